"""The page at `/`: choose a voice, type a text, play it whole (wav) or hear it as it is generated.

One self-contained HTML document (no CDN, nothing fetched but this server's own `/v1/` routes), served
with a Content-Security-Policy that lets only its own inline script and style run (by their hashes) and
lets it talk only to this server. What the server sends back (voice names, error messages) is put into the
page with `textContent`, never parsed as HTML. The text area and the voice list are `dir="auto"`, so an
Arabic text reads right to left. The stream is raw 16-bit PCM (`stream_format: "audio"`) scheduled into
Web Audio as it arrives.
"""

from __future__ import annotations

import base64
import hashlib

STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; }
label { display: block; margin-top: 1rem; font-weight: 600; }
textarea, select, input { width: 100%; box-sizing: border-box; font: inherit; padding: .4rem; }
textarea { min-height: 7rem; }
button { margin: 1rem .5rem 0 0; font: inherit; padding: .4rem 1.2rem; }
audio { display: block; width: 100%; margin-top: 1rem; }
#status { margin-top: 1rem; white-space: pre-wrap; }
#status.error { color: #b00020; }
[hidden] { display: none; }
"""

SCRIPT = """
"use strict";
const $ = (id) => document.getElementById(id);
const RATE = Number(document.body.dataset.sampleRate);
function headers() {
  const h = {"Content-Type": "application/json"};
  const key = $("key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}
function say(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}
async function failure(response) {
  try {
    const body = await response.json();
    return response.status + ": " + body.error.message;
  } catch (e) {
    return "HTTP " + response.status;
  }
}
const KEY_REQUIRED = document.body.dataset.keyRequired === "true";
async function loadVoices() {
  if (KEY_REQUIRED && !$("key").value.trim()) { say("enter the server's API key", false); return; }
  const response = await fetch("/v1/audio/voices", {headers: headers()});
  if (!response.ok) { say("voices: " + await failure(response), true); return; }
  const names = (await response.json()).voices;
  const list = $("voice"), chosen = list.value;
  list.replaceChildren();
  for (const name of names) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name;
    list.append(option);
  }
  if (names.includes(chosen)) list.value = chosen;
  if (names.length) say(names.length + " voice(s)", false);
  else say("no voices: start the server with --voices DIR", true);
}
function request(streamed) {
  const body = {model: "higgs-tune", input: $("text").value, voice: $("voice").value,
                response_format: streamed ? "pcm" : "wav"};
  if (streamed) body.stream_format = "audio";
  return fetch("/v1/audio/speech", {method: "POST", headers: headers(), body: JSON.stringify(body)});
}
async function play() {
  say("generating...", false);
  const response = await request(false);
  if (!response.ok) { say(await failure(response), true); return; }
  const audio = $("audio");
  if (audio.src) URL.revokeObjectURL(audio.src);
  audio.src = URL.createObjectURL(await response.blob());
  say("stopped by the model: " + response.headers.get("X-Stopped-By-Eos"), false);
  audio.play().catch((e) => say("press play on the player (" + e.name + ")", false));
}
async function stream() {
  say("streaming...", false);
  const context = new AudioContext({sampleRate: RATE});
  const response = await request(true);
  if (!response.ok) { say(await failure(response), true); return; }
  const reader = response.body.getReader();
  let at = context.currentTime, received = 0, rest = new Uint8Array(0);
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    const bytes = new Uint8Array(rest.length + value.length);
    bytes.set(rest);
    bytes.set(value, rest.length);
    const whole = bytes.length - (bytes.length % 2);
    rest = bytes.slice(whole);
    received += value.length;
    const samples = new Int16Array(bytes.buffer.slice(0, whole));
    if (!samples.length) continue;
    const buffer = context.createBuffer(1, samples.length, RATE);
    buffer.getChannelData(0).set(Float32Array.from(samples, (s) => s / 32768));
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(context.destination);
    at = Math.max(at, context.currentTime);
    source.start(at);
    at += buffer.duration;
    $("streamed").textContent = received + " bytes, " + (received / 2 / RATE).toFixed(2) + " s";
  }
  say("stream finished", false);
}
const guard = (f) => () => f().catch((e) => say(String(e), true));
$("play").addEventListener("click", guard(play));
$("stream").addEventListener("click", guard(stream));
$("key").addEventListener("change", guard(loadVoices));
$("key-row").hidden = !KEY_REQUIRED;
guard(loadVoices)();
"""

BODY = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>higgs-tune serve</title>
<style>{style}</style>
</head>
<body data-sample-rate="{rate}" data-key-required="{key}">
<h1>higgs-tune serve</h1>
<div id="key-row" hidden>
<label for="key">API key</label>
<input id="key" type="password" autocomplete="off" placeholder="the server's --api-key">
</div>
<label for="voice">Voice</label>
<select id="voice" dir="auto"></select>
<label for="text">Text</label>
<textarea id="text" dir="auto" placeholder="What to say"></textarea>
<button id="play" type="button">Play</button>
<button id="stream" type="button">Stream</button>
<span id="streamed"></span>
<audio id="audio" controls></audio>
<div id="status" role="status"></div>
<script>{script}</script>
</body>
</html>
"""


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


# Only this page's own script and style run; it may talk only to this server and play only its own blobs.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_hash(SCRIPT)}; style-src {_hash(STYLE)}; connect-src 'self'; "
    "media-src blob:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def page_html(sample_rate: int, key_required: bool) -> str:
    """The page for a server whose audio is at `sample_rate` Hz; its key field shows when it has a key."""
    body = BODY.replace("{style}", STYLE).replace("{script}", SCRIPT)
    return body.replace("{rate}", str(int(sample_rate))).replace("{key}", "true" if key_required else "false")
