"""`higgs-tune serve` on a text longer than `--max-chars-per-chunk`: spoken in chunks by `clone`'s own
function (`inference.long_text.clone_long_text`), whole or streamed chunk by chunk, the chunk count and
the flagged chunks in the answer's headers."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from serve_process import KEY, REF_TEXT, serve, write_voice

MAX_SECONDS = 1.6  # the tiny model never stops: every chunk is cut here (and flagged `cut`)
HEADERS = {"Authorization": f"Bearer {KEY}"}
TEXT = "Hello there. How are you today? I am fine."  # three chunks at 20 characters


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("serve-long")
    write_voice(root / "voices")
    options = ["--voices", root / "voices", "--api-key", KEY, "--greedy", "--max-seconds", MAX_SECONDS]
    options += ["--max-chars-per-chunk", 20, "--context-chunks", 1]
    with serve(tiny_model_dir, root / "server.log", *map(str, options)) as url:
        yield url, root


def _ask(url: str, **fields) -> httpx.Response:
    body = {"model": "higgs", "voice": "alice", "input": TEXT, "response_format": "pcm", **fields}
    response = httpx.post(f"{url}/v1/audio/speech", json=body, headers=HEADERS, timeout=300)
    assert response.status_code == 200, response.text
    return response


def test_long_text_is_spoken_in_chunks_as_clone_speaks_it(server, tiny_model_dir):
    """Whole and streamed, the server's clip of a long text is `clone_long_text`'s for the same greedy
    request (same chunks, same frames; 16-bit PCM of the same audio, at most 1 apart from rounding), and
    the headers say the chunks and each chunk's flags (every one cut)."""
    from higgs_tune.inference.generate import load_for_cloning
    from higgs_tune.inference.long_text import clone_long_text
    from higgs_tune.inference.settings import LengthLimit, LongTextSettings, SamplingSettings
    from higgs_tune.model.codes import encode_file
    from higgs_tune.serving.audio_formats import pcm16

    answer = _ask(server[0])
    assert answer.headers["x-higgs-tune-chunks"] == "3"
    assert answer.headers["x-stopped-by-eos"] == "false"
    served = np.frombuffer(answer.content, dtype="<i2").astype(np.int32)
    streamed = _ask(server[0], stream_format="audio")
    assert streamed.headers["x-higgs-tune-chunks"] == "3"
    streamed_audio = np.frombuffer(streamed.content, dtype="<i2").astype(np.int32)

    model, processor, prompt = load_for_cloning(str(tiny_model_dir), None)
    ref_codes = encode_file(processor, server[1] / "voices" / "alice.wav")
    cloned = clone_long_text(
        model, processor, REF_TEXT, ref_codes, TEXT, prompt, SamplingSettings(greedy=True),
        LengthLimit(max_seconds=MAX_SECONDS), LongTextSettings(max_chars_per_chunk=20, context_chunks=1),
    )  # fmt: skip
    assert len(cloned.chunks) == 3
    flags = "; ".join(f"chunk {i + 1}: {', '.join(f)}" for i, f in enumerate(cloned.chunk_flags))
    assert "cut" in cloned.chunk_flags[0] and answer.headers["x-higgs-tune-flags"] == flags
    expected = np.frombuffer(pcm16(cloned.audio), dtype="<i2").astype(np.int32)
    assert len(served) == len(streamed_audio) == len(expected) == cloned.audio.size
    assert np.abs(served - expected).max() <= 1
    assert np.abs(streamed_audio - expected).max() <= 1
