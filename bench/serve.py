"""Benchmark of `higgs-tune serve` on the tiny model: throughput, latency, streaming, overload and memory.

    PYTHONPATH=src python bench/serve.py [--clients 8] [--seconds 15] [--max-queue 8] [--memory-requests 500]

Builds the tiny model and one voice in a temporary folder and starts two real servers on loopback
(`serving.process`, as the serve tests do), greedy, every clip cut at `--max-clip-seconds`:

* batched (`--max-batch-size 8`): `--clients` closed-loop clients asking for whole clips for `--seconds`,
  then as many streaming (`stream_format: "audio"`, pcm), then `--memory-requests` more requests with the
  server's resident memory read before and after (after a warm-up, so the first allocations are not
  counted as growth);
* one at a time (`--max-batch-size 1`): the same whole-clip load, then twice `--max-queue` clients
  (refused requests wait 0.1 s and retry), counting statuses.

The batched/one-at-a-time ratio is measured in this one run. Targets are printed beside the figures, never
asserted: batching at 8 clients at least 3x one at a time; no errors but 429s at twice --max-queue; no
memory growth over 500 requests. Peak RSS is the server process's high-water mark (Linux /proc).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

from higgs_tune.serving.process import served
from higgs_tune.tiny.model import build_tiny_model

SR = 24_000
TEXT = "the quick brown fox jumps over the lazy dog"


@dataclass
class Load:
    """What the clients of one phase saw."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_chunks: list[float] = field(default_factory=list)
    audio_seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self) -> int:
        return self.statuses[200]

    def errors(self) -> str:
        bad = {s: n for s, n in sorted(self.statuses.items()) if s != 200}
        return ", ".join(f"{s}: {n}" for s, n in bad.items()) or "none"


def write_voice(folder: Path) -> None:
    """One voice (`v`): a harmonic tone with a syllable-like envelope and its transcript."""
    folder.mkdir(parents=True)
    t = np.arange(int(1.5 * SR)) / SR
    x = sum(np.sin(2 * np.pi * k * 150 * t) / k for k in range(1, 6)) * (
        0.6 + 0.4 * np.sin(8 * np.pi * t) ** 2
    )
    sf.write(str(folder / "v.wav"), 0.3 * x / np.abs(x).max(), SR)
    (folder / "v.txt").write_text("hello there friend", encoding="utf-8")


def _ask(client: httpx.Client, url: str, streamed: bool, load: Load) -> None:
    body = {"model": "tiny", "input": TEXT, "voice": "v", "response_format": "pcm"}
    if streamed:
        body["stream_format"] = "audio"
    start, first, size = time.perf_counter(), None, 0
    with client.stream("POST", f"{url}/v1/audio/speech", json=body) as response:
        for chunk in response.iter_bytes():
            first = first or time.perf_counter() - start
            size += len(chunk)
    took = time.perf_counter() - start
    with load.lock:
        load.statuses[response.status_code] += 1
        if response.status_code == 200:
            load.latencies.append(took)
            load.audio_seconds += size / 2 / SR
            if streamed and first is not None:
                load.first_chunks.append(first)
    if response.status_code == 429:
        time.sleep(0.1)


def run_load(url: str, clients: int, seconds: float, streamed: bool = False, requests: int = 0) -> Load:
    """`clients` threads asking one request after another for `seconds` (or until `requests` are sent)."""
    load, deadline, sent = Load(), time.perf_counter() + seconds, [0]

    def client_loop() -> None:
        with httpx.Client(timeout=300) as client:
            while time.perf_counter() < deadline:
                with load.lock:
                    if requests and sent[0] >= requests:
                        return
                    sent[0] += 1
                _ask(client, url, streamed, load)

    start = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    load.seconds = time.perf_counter() - start
    return load


def rss_mib(pid: int, key: str = "VmRSS") -> float:
    """The process's resident memory (`VmRSS`) or its peak (`VmHWM`), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.3f}" if values else "n/a"


def _rate(load: Load) -> str:
    return f"{load.ok() / load.seconds:.2f}"


def table(batched: Load, single: Load, streamed: Load, overload: Load, memory: tuple, args) -> str:
    """The printed table: one row per figure, batched and one at a time side by side, and the target."""
    before, after, peak_b, peak_s = memory
    ratio = (batched.ok() / batched.seconds) / max(single.ok() / single.seconds, 1e-9)
    over = dict(sorted(overload.statuses.items()))
    over_ok = "yes" if set(over) <= {200, 429} else "NO"
    rows = [
        ("requests/s", _rate(batched), _rate(single), ""),
        ("audio s per wall s", f"{batched.audio_seconds / batched.seconds:.2f}",
         f"{single.audio_seconds / single.seconds:.2f}", ""),
        ("latency p50 s", _pct(batched.latencies, 50), _pct(single.latencies, 50), ""),
        ("latency p95 s", _pct(batched.latencies, 95), _pct(single.latencies, 95), ""),
        ("time to first chunk p50 / p95 s (stream)",
         f"{_pct(streamed.first_chunks, 50)} / {_pct(streamed.first_chunks, 95)}", "", ""),
        ("errors by status", batched.errors(), single.errors(), "none"),
        ("peak RSS MiB (server)", f"{peak_b:.0f}", f"{peak_s:.0f}", ""),
        ("batched / one-at-a-time throughput", f"{ratio:.2f}x", "", ">= 3x"),
        (f"statuses at {2 * args.max_queue} clients (2x --max-queue)",
         ", ".join(f"{s}: {n}" for s, n in over.items()), "", f"200 and 429 only: {over_ok}"),
        (f"RSS MiB before / after {args.memory_requests} requests", f"{before:.0f} / {after:.0f}", "",
         f"no growth: {after - before:+.0f} MiB"),
    ]  # fmt: skip
    head = f"| figure | batched (--max-batch-size {args.clients}) | one at a time (1) | target |"
    lines = [head, "|---|---|---|---|"] + [f"| {' | '.join(row)} |" for row in rows]
    return "\n".join(lines)


def measure(root: Path, args) -> str:
    """Both servers, every phase; the table."""
    model = build_tiny_model(root / "tiny", seed=0)
    write_voice(root / "voices")
    common = ["--voices", str(root / "voices"), "--greedy", "--max-seconds", str(args.max_clip_seconds)]
    common += ["--max-queue", str(args.max_queue), "--batch-wait-ms", "20"]
    with served(model, root / "batched.log", *common, "--max-batch-size", str(args.clients)) as (url, proc):
        run_load(url, args.clients, 1e9, requests=args.clients)  # warm-up: one batch
        batched = run_load(url, args.clients, args.seconds)
        streamed = run_load(url, args.clients, args.seconds, streamed=True)
        before = rss_mib(proc.pid)
        run_load(url, args.clients, 1e9, requests=args.memory_requests)
        after, peak_b = rss_mib(proc.pid), rss_mib(proc.pid, "VmHWM")
    with served(model, root / "single.log", *common, "--max-batch-size", "1") as (url, proc):
        run_load(url, 1, 1e9, requests=1)
        single = run_load(url, args.clients, args.seconds)
        overload = run_load(url, 2 * args.max_queue, args.seconds)
        peak_s = rss_mib(proc.pid, "VmHWM")
    return table(batched, single, streamed, overload, (before, after, peak_b, peak_s), args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (and the batch size)")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each load phase")
    parser.add_argument("--max-queue", type=int, default=8, help="the servers' --max-queue")
    parser.add_argument("--memory-requests", type=int, default=500, help="requests between the RSS reads")
    parser.add_argument("--max-clip-seconds", type=float, default=1.0, help="the servers' --max-seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        print(measure(Path(tmp), args))
    print(
        f"\n{time.perf_counter() - started:.0f} s in all; tiny model, CPU, "
        f"clips cut at {args.max_clip_seconds} s"
    )


if __name__ == "__main__":
    main()
