"""One ingest run: a source's recordings, in chunks, through worker processes, into a corpus.

The main process reads the source (paths or encoded bytes only), hands chunks to `workers` processes that
decode, detect speech, slice, filter and write clips (`recordings`), transcribes what they bring back
(`transcribe`, the ASR lives here), and writes each chunk's completion record (`corpus`). With
`workers <= 1` the chunks are processed in the main process. A progress bar counts audio hours.

Several processes (`torchrun --nproc_per_node N -m higgs_tune ingest ...`) split the chunks round-robin
by rank, without overlap, as `prepare` does (`ranks.process_rank`); each reads the source's
order on its own. Rank 0 then waits for every chunk's record and assembles `utterances.jsonl`.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from pathlib import Path

from higgs_tune.ingest.corpus import (
    SETTINGS,
    assemble,
    chunk_digest,
    chunk_done,
    start_run,
    write_part,
)
from higgs_tune.ingest.recordings import ChunkResult, init_worker, process_chunk
from higgs_tune.ingest.settings import IngestSettings
from higgs_tune.ingest.sources import Recording, read_source
from higgs_tune.ingest.summary import IngestSummary
from higgs_tune.ingest.transcribe import ChunkTranscriber
from higgs_tune.logs import Progress
from higgs_tune.ranks import process_rank

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.5
Job = tuple[int, str, list[Recording]]  # (chunk, digest, recordings)


def ingest(source: str, out: Path, settings: IngestSettings, workers: int = 1) -> IngestSummary | None:
    """Make (or finish) the corpus in `out`; the summary on rank 0, None on the other ranks."""
    rank, world = process_rank()
    recordings = read_source(str(source), settings.source)  # an unknown source fails before OUT is made
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if rank != 0:
        _wait(lambda: (out / SETTINGS).is_file(), "rank 0 to start the corpus")
    start_run(out, str(source), settings.recorded())
    transcribe = ChunkTranscriber(settings, out)
    digests: list[str] = []
    jobs = _my_jobs(recordings, settings.chunk_size, (rank, world), out, digests)
    with Progress(unit="audio-h", desc=f"ingest{f' rank {rank}' if world > 1 else ''}") as bar:
        for result in _results(jobs, settings, out, workers):
            transcribe(result)
            write_part(out, result.chunk, result.digest, result.kept, result.rejected)
            bar.update(result.seconds / 3600)
    if rank != 0:
        return None
    _wait(lambda: all(chunk_done(out, i, d) for i, d in enumerate(digests)), "the other ranks' chunks")
    kept, rejected = assemble(out, range(len(digests)))
    summary = IngestSummary.of(kept, rejected)
    log.info("ingest %s -> %s: %d clips kept, %d rejected", source, out, summary.kept, summary.rejected)
    return summary


def _my_jobs(
    recordings: Iterator[Recording], size: int, ranks: tuple[int, int], out: Path, digests: list[str]
) -> Iterator[Job]:
    """This rank's unfinished chunks; `digests` collects every chunk's digest as the source is read."""
    rank, world = ranks
    chunk = 0
    while batch := list(islice(recordings, size)):
        digest = chunk_digest(r.key for r in batch)
        digests.append(digest)
        if chunk % world == rank and not chunk_done(out, chunk, digest):
            yield chunk, digest, batch
        chunk += 1


def _results(jobs: Iterator[Job], settings: IngestSettings, out: Path, workers: int) -> Iterator[ChunkResult]:
    """Each job's result: in this process, or from a pool of `workers` processes with a bounded number of
    chunks in flight (a streamed dataset is never read far ahead)."""
    if workers <= 1:
        for chunk, digest, batch in jobs:
            yield process_chunk(chunk, digest, batch, settings, out)
        return
    context = multiprocessing.get_context("spawn")  # no torch or OpenMP state inherited from this process
    with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker) as pool:
        pending: list[Future[ChunkResult]] = []
        for chunk, digest, batch in jobs:
            pending.append(pool.submit(process_chunk, chunk, digest, batch, settings, out))
            if len(pending) >= 2 * workers:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


def _wait(ready: Callable[[], bool], what: str) -> None:
    logged = False
    while not ready():
        if not logged:
            log.info("waiting for %s", what)
            logged = True
        time.sleep(_POLL_SECONDS)
