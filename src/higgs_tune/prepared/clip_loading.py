"""Loading (reading and resampling) clips in worker processes while the main process runs the codec.

On a GPU the codec encodes a clip in milliseconds, while libsndfile and soxr take about as long on one CPU
core, so loading clips in the encoding process would leave the GPU idle half the time. Workers are started
with `spawn`: the main process holds torch's threads (and maybe a CUDA context), which a forked child must
not inherit; this module imports no torch so the workers start in a fraction of a second.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from higgs_tune.data.audio import AudioError, audio_info, load_audio
from higgs_tune.data.problems import duration_problem


@dataclass(frozen=True)
class LoadedClip:
    """A clip loaded as mono float32 at the codec's rate, or why it could not be (an `AudioError`'s problem
    code and message; the exception itself does not survive pickling between processes)."""

    clip: str
    path: Path
    audio: np.ndarray | None
    problem_code: str | None = None
    problem: str | None = None


Bounds = tuple[float, float] | None  # (min_seconds, max_seconds) of an accepted clip; None: no check


def _load(clip: str, path: Path, sampling_rate: int, bounds: Bounds) -> LoadedClip:
    """Load one clip; a clip whose header says it is too short or too long (or whose header is absurd) is
    refused before decoding, as `validate` judges it, so a lying header never costs its claimed memory."""
    try:
        if bounds is not None:
            problem = duration_problem(audio_info(path).duration, *bounds)
            if problem is not None:
                return LoadedClip(clip, path, None, *problem)
        return LoadedClip(clip, path, load_audio(path, sampling_rate))
    except AudioError as e:
        return LoadedClip(clip, path, None, e.code, e.problem)


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: end when the main process is gone. A killed `prepare` (SIGKILL, OOM killer)
    cannot shut its pool down, and orphaned workers would otherwise wait on their queue forever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _load_job(job: tuple[str, Path, int, Bounds]) -> LoadedClip:
    return _load(*job)


def load_clips(
    jobs: Iterable[tuple[str, Path]],
    sampling_rate: int,
    workers: int,
    prefetch: int | None = None,
    bounds: Bounds = None,
) -> Iterator[LoadedClip]:
    """Load (clip, path) jobs in `workers` processes (0: in this process), yielding results in job order;
    with `bounds`, clips whose header puts them outside (min_seconds, max_seconds) are not decoded.

    At most `prefetch` clips (default 4 per worker) are loaded ahead of the consumer, so memory stays
    bounded when the codec is slower than the loading workers, as it is on a CPU.
    """
    if workers <= 0:
        for clip, path in jobs:
            yield _load(clip, path, sampling_rate, bounds)
        return
    todo = iter(jobs)
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_exit_with_parent,
        initargs=(os.getpid(),),
    )
    pending: deque[Future[LoadedClip]] = deque()

    def submit(job: tuple[str, Path]) -> None:
        pending.append(pool.submit(_load_job, (*job, sampling_rate, bounds)))

    try:
        for job in islice(todo, prefetch or 4 * workers):
            submit(job)
        while pending:
            result = pending.popleft().result()
            job = next(todo, None)
            if job is not None:
                submit(job)
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
