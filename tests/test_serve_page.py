"""The page at `/` of `higgs-tune serve`, in Debian's Chromium against a real server on the tiny model: it
lists the voices, reads Arabic right to left, plays a wav and streams pcm through Web Audio, and shows a
refusal's message as text."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from serve_process import KEY, serve, write_voice

ARABIC = "مرحبا بكم في الخادم"


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("serve-page")
    write_voice(root / "voices")
    write_voice(root / "voices", "bob", seed=2)
    options = ["--voices", root / "voices", "--api-key", KEY, "--greedy", "--max-seconds", "1.0"]
    with serve(tiny_model_dir, root / "server.log", *map(str, options)) as url:
        yield url


def _open(browser, url: str):
    page = browser.new_context().new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.goto(url)
    return page, errors


def test_the_page_plays_and_streams_an_arabic_text_in_the_chosen_voice(server, browser):
    answer = httpx.get(server)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert "script-src 'sha256-" in answer.headers["content-security-policy"]
    assert "http" not in answer.text.replace("http-equiv", "")  # nothing fetched from elsewhere

    page, errors = _open(browser, server)
    assert page.is_visible("#key")  # the server has a key: the page asks for it
    page.fill("#key", KEY)
    page.dispatch_event("#key", "change")
    page.wait_for_function("() => document.querySelectorAll('#voice option').length === 2")
    page.select_option("#voice", "bob")
    page.fill("#text", ARABIC)
    assert page.eval_on_selector("#text", "(e) => getComputedStyle(e).direction") == "rtl"
    assert page.get_attribute("#voice", "dir") == "auto"

    with page.expect_response("**/v1/audio/speech") as answered:
        page.click("#play")
    response = answered.value
    assert response.status == 200 and response.headers["content-type"] == "audio/wav"
    assert response.request.post_data_json["voice"] == "bob"
    assert response.request.post_data_json["input"] == ARABIC
    duration = page.wait_for_function(
        "() => { const a = document.querySelector('#audio'); return a.duration > 0 && a.duration; }"
    ).json_value()
    assert 0 < duration <= 1.0 + 0.05

    page.click("#stream")
    page.wait_for_function("() => document.querySelector('#status').textContent === 'stream finished'")
    received = int(page.text_content("#streamed").split()[0])
    assert received > 0 and received % 2 == 0
    assert not errors, errors


def test_the_page_shows_a_refusal_as_text_and_never_as_markup(server, browser):
    page, errors = _open(browser, server)
    page.fill("#key", KEY)
    page.dispatch_event("#key", "change")
    page.wait_for_function("() => document.querySelectorAll('#voice option').length === 2")
    page.fill("#text", "<|audio_bos|><img src=x>")
    page.click("#play")
    page.wait_for_function("() => document.querySelector('#status').className === 'error'")
    status = page.text_content("#status")
    assert status.startswith("400: ") and "<|audio_bos|>" in status
    assert page.eval_on_selector("#status", "(e) => e.children.length") == 0
    # the wrong key: the voices are refused and the message says what to send
    page.fill("#key", "wrong")
    page.dispatch_event("#key", "change")
    page.wait_for_function("() => document.querySelector('#status').textContent.startsWith('voices: 401')")
    # Chromium logs each refused request (400, 401) itself; the page's own script raised nothing
    assert [e for e in errors if "Failed to load resource" not in e] == [], errors
