"""`higgs-tune serve` as a real process on the tiny model, spoken to with the official `openai` client and
plain HTTP: every format, the one prompt builder (the server's codes are `clone`'s), streaming, batching,
voices, and what it refuses with which status."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from serve_process import KEY, REF_TEXT, serve, write_voice

openai = pytest.importorskip("openai", reason="the serve tests use the openai client (.[dev])")
MAX_SECONDS = 1.6  # 40 frames: the tiny model never stops, so every clip is cut here
HEADERS = {"Authorization": f"Bearer {KEY}"}
# The tiny model (seed 0, greedy, the voice of `write_voice`) stops after 6 frames on "hello you" and never
# on "stream me", which is cut at MAX_SECONDS: FULL frames.
SHORT, LONG, FULL = "hello you", "stream me", int(MAX_SECONDS * 25)


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("serve")
    write_voice(root / "voices")
    options = ["--voices", root / "voices", "--api-key", KEY, "--greedy", "--max-seconds", MAX_SECONDS]
    options += ["--batch-wait-ms", "300", "--max-chars", "200"]
    with serve(tiny_model_dir, root / "server.log", *map(str, options)) as url:
        yield url, root


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key=KEY, max_retries=0, timeout=120)


def pcm_audio(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.int32)


def test_openai_client_gets_every_format_in_one_batch(server, client):
    """Five requests sent together come back each in its format with its content type, from one batch."""
    formats = {
        "mp3": "audio/mpeg",
        "opus": "audio/ogg",
        "flac": "audio/flac",
        "wav": "audio/wav",
        "pcm": "audio/pcm",
    }
    answers: dict[str, object] = {}

    def ask(fmt: str) -> None:
        answers[fmt] = client.audio.speech.create(
            model="higgs", voice="alice", input="hello you", response_format=fmt
        )

    threads = [threading.Thread(target=ask, args=(f,)) for f in formats]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for fmt, content_type in formats.items():
        assert answers[fmt].response.headers["content-type"] == content_type
    samples = len(pcm_audio(answers["pcm"].content))
    assert samples > 0 and samples % 960 == 0  # whole frames of the codec
    for fmt in ("flac", "wav"):
        audio, sr = sf.read(io.BytesIO(answers[fmt].content))
        assert sr == 24_000 and len(audio) == samples, fmt
    for fmt in ("mp3", "opus"):  # lossy: their encoders pad the start and end a little
        audio, sr = sf.read(io.BytesIO(answers[fmt].content))
        assert sr == 24_000 and abs(len(audio) - samples) < 0.1 * sr, fmt
    metrics = httpx.get(f"{server[0]}/metrics").text
    batched = [line for line in metrics.splitlines() if line.startswith("higgs_tune_batch_size_count")]
    sizes = float(
        next(line for line in metrics.splitlines() if line.startswith("higgs_tune_batch_size_sum")).split()[1]
    )
    assert sizes / float(batched[0].split()[1]) > 1, "the five requests were not batched"


def test_default_format_is_mp3(client):
    answer = client.audio.speech.create(model="higgs", voice="alice", input="hello")
    assert answer.response.headers["content-type"] == "audio/mpeg"


def test_server_codes_equal_clone(server, client, tiny_model_dir):
    """The same greedy request through the server and through `clone_one` gives the same clip (16-bit PCM of
    the same codes: at most 1 apart from rounding float32 samples the same way)."""
    from higgs_tune.inference.clone import clone_one
    from higgs_tune.inference.generate import load_for_cloning
    from higgs_tune.inference.settings import SamplingSettings
    from higgs_tune.serving.audio_formats import pcm16

    served = pcm_audio(
        client.audio.speech.create(
            model="higgs", voice="alice", input="bonjour", response_format="pcm"
        ).content
    )
    model, processor, prompt = load_for_cloning(str(tiny_model_dir), None)
    ref = server[1] / "voices" / "alice.wav"
    cloned = clone_one(
        model,
        processor,
        ref,
        REF_TEXT,
        "bonjour",
        prompt,
        SamplingSettings(greedy=True),
        max_seconds=MAX_SECONDS,
    )
    assert np.abs(served - pcm_audio(pcm16(cloned.audio))).max() <= 1
    assert len(served) == cloned.codes.shape[1] * 960


def test_stream_equals_one_shot(server, client):
    """A stream (`stream_format: audio`) comes in several pieces, the first well before the last, and
    equals the one-shot clip within 1 in 16-bit PCM (the bound docs/serving.md states)."""
    whole = pcm_audio(
        client.audio.speech.create(model="higgs", voice="alice", input=LONG, response_format="pcm").content
    )
    times, pieces = [], []
    with client.audio.speech.with_streaming_response.create(
        model="higgs", voice="alice", input=LONG, response_format="pcm", stream_format="audio"
    ) as response:
        for piece in response.iter_bytes(chunk_size=None):
            times.append(time.monotonic())
            pieces.append(piece)
    streamed = pcm_audio(b"".join(pieces))
    assert len(streamed) == len(whole) == FULL * 960
    assert np.abs(streamed - whole).max() <= 1
    # That the pieces are sent while generating, not after, is shown in the engine, where it does not
    # depend on the CPU's speed (test_serve_limits.py::test_a_stream_sends_audio_before_generation_ends).
    assert len(pieces) >= 2


def test_sse_stream(server):
    body = {
        "model": "higgs",
        "voice": "alice",
        "input": LONG,
        "response_format": "pcm",
        "stream_format": "sse",
    }
    with httpx.stream("POST", f"{server[0]}/v1/audio/speech", json=body, headers=HEADERS, timeout=120) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    assert [e["type"] for e in events[-1:]] == ["speech.audio.done"]
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert len(deltas) >= 2
    audio = b"".join(base64.b64decode(e["audio"]) for e in deltas)
    assert len(audio) == FULL * 960 * 2


def test_wav_stream_reads_as_wav(client):
    with client.audio.speech.with_streaming_response.create(
        model="higgs", voice="alice", input=LONG, response_format="wav", stream_format="audio"
    ) as response:
        data = response.read()
    audio, sr = sf.read(io.BytesIO(data))
    assert sr == 24_000 and len(audio) == FULL * 960


def test_voices_listed_uploaded_and_sent_inline(server, client, tmp_path):
    url = server[0]
    assert httpx.get(f"{url}/v1/audio/voices", headers=HEADERS).json() == {"voices": ["alice"]}
    clip = write_voice(tmp_path, "bob", seed=3).read_bytes()
    files = {"audio_sample": ("bob.wav", clip, "audio/wav")}
    data = {"name": "bob", "ref_text": "a voice of my own"}
    assert httpx.post(f"{url}/v1/audio/voices", files=files, data=data).status_code == 401
    answer = httpx.post(f"{url}/v1/audio/voices", files=files, data=data, headers=HEADERS)
    assert answer.status_code == 200 and answer.json()["voice"]["name"] == "bob"
    assert httpx.get(f"{url}/v1/audio/voices", headers=HEADERS).json() == {"voices": ["alice", "bob"]}
    by_name = client.audio.speech.create(
        model="higgs", voice="bob", input="hi", response_format="pcm"
    ).content
    inline = {
        "ref_audio": "data:audio/wav;base64," + base64.b64encode(clip).decode(),
        "ref_text": "a voice of my own",
    }
    sent = client.audio.speech.create(
        model="higgs", voice="", input="hi", response_format="pcm", extra_body=inline
    )
    assert np.abs(pcm_audio(sent.content) - pcm_audio(by_name)).max() <= 1


REFUSED = [
    ({"voice": "nobody"}, 404, "the voices are: alice"),
    ({"speed": 1.5}, 400, "speed"),
    ({"instructions": "whisper"}, 400, "instructions"),
    ({"response_format": "aac"}, 400, "mp3, opus, flac, wav, pcm"),
    ({"response_format": "mp3", "stream_format": "audio"}, 400, "pcm or wav"),
    ({"input": "x" * 201}, 400, "201 characters"),
    ({"input": "hi <|eot_id|> there"}, 400, "control token"),
    ({"input": "   "}, 400, "empty"),
    ({"ref_audio": base64.b64encode(b"RIFF").decode()}, 400, "ref_text"),
    ({"voice": None, "ref_text": "hello"}, 400, "ref_audio"),
    ({"voice": None, "ref_audio": "https://example.org/a.wav", "ref_text": "hi"}, 400, "fetches no URL"),
    ({"voice": None, "ref_audio": "file:///etc/passwd", "ref_text": "hi"}, 400, "reads no file"),
    ({"voice": None, "ref_audio": "bm90IGF1ZGlv", "ref_text": "hi"}, 400, "ref_audio"),
    ({"surprise": 1}, 400, "not a field"),
]


@pytest.mark.parametrize(("change", "status", "says"), REFUSED)
def test_refused_with_one_line(server, change, status, says):
    body = {"model": "higgs", "voice": "alice", "input": "hello", **change}
    answer = httpx.post(f"{server[0]}/v1/audio/speech", json=body, headers=HEADERS)
    assert answer.status_code == status, answer.text
    message = answer.json()["error"]["message"]
    assert says in message and "\n" not in message and "Traceback" not in answer.text
    assert str(server[1]) not in answer.text and "/tmp" not in answer.text


def test_refused_before_the_body(server):
    url = f"{server[0]}/v1/audio/speech"
    assert httpx.post(url, json={"model": "m", "input": "hi", "voice": "alice"}).status_code == 401
    wrong = {"Authorization": f"Bearer {KEY}x"}
    assert (
        httpx.post(url, json={"model": "m", "input": "hi", "voice": "alice"}, headers=wrong).status_code
        == 401
    )
    bad = httpx.post(url, content=b"{not json", headers={**HEADERS, "Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["error"]["message"] == "the body is not valid JSON"
    huge = httpx.post(url, content=b"x" * (17 * 1024 * 1024), headers=HEADERS)
    assert huge.status_code == 413


def test_health_and_metrics(server):
    assert httpx.get(f"{server[0]}/health").json()["status"] == "ok"
    text = httpx.get(f"{server[0]}/metrics").text
    for name in (
        "higgs_tune_requests_total",
        "higgs_tune_request_seconds_bucket",
        "higgs_tune_queue_depth",
        "higgs_tune_audio_seconds_total",
    ):
        assert name in text


def test_early_request_returns_before_its_batch_ends(server, client):
    """Two requests in one batch: the one whose clip ends first is answered while the other generates."""
    done: dict[str, float] = {}

    def ask(text: str) -> None:
        client.audio.speech.create(model="higgs", voice="alice", input=text, response_format="pcm")
        done[text] = time.monotonic()

    batches, early = (
        _metric(server[0], "higgs_tune_batch_size_count"),
        _metric(server[0], "higgs_tune_early_answers_total"),
    )
    threads = [threading.Thread(target=ask, args=(text,)) for text in (LONG, SHORT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _metric(server[0], "higgs_tune_batch_size_count") == batches + 1, "the two were not one batch"
    assert _metric(server[0], "higgs_tune_early_answers_total") == early + 1
    assert done[SHORT] < done[LONG]


def _metric(url: str, name: str) -> float:
    lines = httpx.get(f"{url}/metrics").text.splitlines()
    return float(next(line for line in lines if line.startswith(name + " ")).split()[1])
