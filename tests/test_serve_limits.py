"""`higgs-tune serve`'s limits: as a real process on the tiny model, one request generated at a time, a
full queue answers 429 with Retry-After and a request past --timeout-s 504; in the engine, cancelled
requests stop their batch; a bad --voices folder stops the start in one line."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from serve_process import KEY, serve, write_voice

HEADERS = {"Authorization": f"Bearer {KEY}"}
# About 100 frames on the tiny model (greedy): a second or more of generation and decoding here.
LONG = {"model": "higgs", "voice": "alice", "input": "one two three four five " * 4, "response_format": "pcm"}


def limited_server(tiny_model_dir: Path, root: Path, timeout_s: float):
    """A server that generates one request at a time (--max-batch-size 1) with two waiting at most."""
    write_voice(root / "voices")
    options = ["--voices", root / "voices", "--api-key", KEY, "--greedy", "--max-seconds", 30]
    options += ["--max-batch-size", 1, "--max-queue", 2, "--batch-wait-ms", 0, "--timeout-s", timeout_s]
    return serve(tiny_model_dir, root / "server.log", *map(str, options))


def metric(url: str, name: str) -> float:
    lines = httpx.get(f"{url}/metrics").text.splitlines()
    return float(next(line for line in lines if line.startswith(name + " ")).split()[1])


def wait_until(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.1)


def ask_at_once(url: str, count: int) -> list[httpx.Response]:
    """`count` requests posted together (a barrier releases them at once), their answers."""
    answers: list[httpx.Response] = []
    barrier = threading.Barrier(count)

    def ask() -> None:
        barrier.wait()
        answers.append(httpx.post(f"{url}/v1/audio/speech", json=LONG, headers=HEADERS, timeout=120))

    threads = [threading.Thread(target=ask) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_busy_server_answers_429_with_retry_after(tiny_model_dir, tmp_path):
    """Twelve requests at once, one generated at a time and two waiting at most (--max-queue 2): those
    beyond are refused at once with 429 and Retry-After, the others are answered. Holds on any CPU: the
    twelve posts land within the first request's generation (about 100 frames and their decoding)."""
    with limited_server(tiny_model_dir, tmp_path, timeout_s=300) as url:
        answers = ask_at_once(url, 12)
        statuses = sorted(a.status_code for a in answers)
        assert 429 in statuses and 200 in statuses and set(statuses) <= {200, 429}, statuses
        for refused in (a for a in answers if a.status_code == 429):
            assert (
                int(refused.headers["Retry-After"]) >= 1
                and "--max-queue" in refused.json()["error"]["message"]
            )
        wait_until(lambda: metric(url, "higgs_tune_in_flight") == 0)


def test_a_request_past_its_time_limit_answers_504(tiny_model_dir, tmp_path):
    """--timeout-s 0.02: no request of about 100 frames is generated and decoded that fast on any CPU, so
    every request gets 504 naming the option, and the server is left with nothing in flight."""
    with limited_server(tiny_model_dir, tmp_path, timeout_s=0.02) as url:
        answers = ask_at_once(url, 2)
        assert [a.status_code for a in answers] == [504, 504]
        assert all("--timeout-s" in a.json()["error"]["message"] for a in answers)
        wait_until(lambda: metric(url, "higgs_tune_in_flight") == 0)


def test_cancelled_requests_stop_their_batch(tiny_model_dir, tmp_path):
    """In the engine: once every request of a batch is cancelled (client gone, or timed out), generation
    stops at the next step, and each request is answered with `Cancelled`."""
    from higgs_tune.inference.settings import SamplingSettings
    from higgs_tune.serving.engine import Cancelled, Engine, Job

    engine = Engine(str(tiny_model_dir), None, SamplingSettings(greedy=True), "cpu", 30)
    codes = engine.encode_reference(write_voice(tmp_path), "voice")
    jobs = [Job({"ref_text": "hello there", "ref_codes": codes, "text": LONG["input"]}, engine.frame_limit)]
    jobs.append(Job(dict(jobs[0].item), engine.frame_limit))

    def leave_after_five(frames) -> None:
        if len(frames) == 5:
            jobs[0].cancelled.set()
            jobs[1].cancelled.set()

    jobs[0].on_frames = leave_after_five
    with pytest.raises(Cancelled):
        engine.generate(jobs)
    assert [len(job.frames) for job in jobs] == [5, 5]
    for job in jobs:
        assert isinstance(job.done.exception(), Cancelled)


def test_bad_voice_folder_stops_the_start(run_cli, tiny_model_dir, tmp_path):
    write_voice(tmp_path / "voices")
    (tmp_path / "voices" / "alice.txt").unlink()
    code, _, err = run_cli(
        "serve", "--model", tiny_model_dir, "--voices", tmp_path / "voices", "--device", "cpu"
    )
    assert code == 2 and "has no transcript alice.txt" in err


def test_a_stream_sends_audio_before_generation_ends(tiny_model_dir, tmp_path):
    """In the engine: a stream's first piece of audio is sent while frames are still being generated, so a
    client hears the start before the end is made (counted in frames, not timed, so it holds on any CPU)."""
    from higgs_tune.inference.settings import SamplingSettings
    from higgs_tune.serving.engine import Engine, Job
    from higgs_tune.serving.streaming import StreamDecoder

    engine = Engine(str(tiny_model_dir), None, SamplingSettings(greedy=True), "cpu", 30)
    codes = engine.encode_reference(write_voice(tmp_path), "voice")
    job = Job({"ref_text": "hello there", "ref_codes": codes, "text": LONG["input"]}, engine.frame_limit)
    sent_at: list[int] = []  # frames generated when each piece was sent
    decoder = StreamDecoder(engine.processor, engine.decode, lambda piece: sent_at.append(len(job.frames)))
    job.on_frames = decoder.on_frames
    engine.generate([job])
    decoder.finish(job.done.result().codes)
    assert len(sent_at) >= 3 and sent_at[0] < len(job.frames), (sent_at, len(job.frames))
