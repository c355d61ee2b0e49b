"""The queue of requests and the one thread that generates: requests that arrive within `batch_wait_ms`
of each other (at most `max_batch_size`) are generated as one batch; beyond `max_queue` waiting requests
a new one is refused (429 with Retry-After) rather than kept waiting for ever. A long text (a `long` job,
spoken in chunks) waits in the same queue and is generated alone, as a batch of its own."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from higgs_tune.serving.api_errors import ApiError
from higgs_tune.serving.engine import Cancelled, Engine, Job

log = logging.getLogger(__name__)


class Batcher:
    """Gathers jobs into batches for `engine.generate`, in one daemon thread (the model is not shared)."""

    def __init__(self, engine: Engine, max_batch_size: int, batch_wait_ms: float, max_queue: int) -> None:
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.batch_wait = batch_wait_ms / 1000
        self.max_queue = max_queue
        self._queue: queue.Queue[Job] = queue.Queue()
        self._held: list[Job] = []  # a long job met while gathering a batch: the next batch
        self._running = 0
        # The metrics' hooks: a batch of `size` took `seconds`; a batch stopped, all its requests cancelled.
        self.on_batch: Callable[[int, float], None] = lambda size, seconds: None
        self.on_cancelled: Callable[[], None] = lambda: None
        self.seconds_per_batch = 1.0  # a running estimate, for Retry-After
        threading.Thread(target=self._run, name="generation", daemon=True).start()

    def in_flight(self) -> int:
        """Requests in the batch being generated."""
        return self._running

    def depth(self) -> int:
        """Requests waiting for a batch."""
        return self._queue.qsize() + len(self._held)

    def submit(self, job: Job) -> None:
        """Queue a job, or refuse it with 429 when `max_queue` are waiting already."""
        if self.depth() >= self.max_queue:
            batches_ahead = self.depth() / self.max_batch_size + 1
            retry = max(1, round(batches_ahead * self.seconds_per_batch))
            raise ApiError(
                429,
                f"the server is busy ({self.depth()} requests waiting, --max-queue "
                f"{self.max_queue}): retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )
        self._queue.put(job)

    def _gather(self) -> list[Job]:
        """The next batch: the first waiting job, and those that arrive within `batch_wait` of it; a long
        job alone (one met while gathering is held for the next batch)."""
        jobs = [self._held.pop() if self._held else self._queue.get()]
        deadline = time.monotonic() + self.batch_wait
        while len(jobs) < self.max_batch_size and not jobs[0].long:
            try:
                job = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                break
            if job.long:
                self._held.append(job)
                break
            jobs.append(job)
        return [job for job in jobs if not job.cancelled.is_set()]

    def _run(self) -> None:
        while True:
            jobs = self._gather()
            if not jobs:
                continue
            start, self._running = time.monotonic(), len(jobs)
            try:
                if jobs[0].long:
                    self.engine.generate_long(jobs[0])
                else:
                    self.engine.generate(jobs)
            except Cancelled:
                self.on_cancelled()
                log.info("a batch of %d stopped: all its requests were cancelled", len(jobs))
            except Exception:  # each job was answered with it; the server goes on with the next batch
                log.exception("generation of a batch of %d failed", len(jobs))
            finally:
                self._running = 0
            seconds = time.monotonic() - start
            self.on_batch(len(jobs), seconds)
            self.seconds_per_batch = 0.8 * self.seconds_per_batch + 0.2 * seconds
