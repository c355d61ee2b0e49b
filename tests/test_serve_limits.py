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


@pytest.fixture(scope="module")
def server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("serve-limits")
    write_voice(root / "voices")
    options = ["--voices", root / "voices", "--api-key", KEY, "--greedy", "--max-seconds", 30]
    options += ["--max-batch-size", 1, "--max-queue", 2, "--batch-wait-ms", 0, "--timeout-s", 1]
    with serve(tiny_model_dir, root / "server.log", *map(str, options)) as url:
        yield url


def metric(url: str, name: str) -> float:
    lines = httpx.get(f"{url}/metrics").text.splitlines()
    return float(next(line for line in lines if line.startswith(name + " ")).split()[1])


def wait_until(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_busy_server_answers_429_and_504(server):
    """Six requests at once, one generated at a time (--max-batch-size 1) and two waiting at most
    (--max-queue 2): the rest are refused at once with 429 and Retry-After, and those that wait longer than
    --timeout-s get 504; none fails otherwise."""
    answers: list[httpx.Response] = []

    def ask() -> None:
        answers.append(httpx.post(f"{server}/v1/audio/speech", json=LONG, headers=HEADERS, timeout=60))

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(a.status_code for a in answers)
    assert 429 in statuses and 504 in statuses and set(statuses) <= {200, 429, 504}, statuses
    for refused in (a for a in answers if a.status_code == 429):
        assert (
            int(refused.headers["Retry-After"]) >= 1 and "--max-queue" in refused.json()["error"]["message"]
        )
    for late in (a for a in answers if a.status_code == 504):
        assert "--timeout-s" in late.json()["error"]["message"]
    wait_until(lambda: metric(server, "higgs_tune_in_flight") == 0)


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
