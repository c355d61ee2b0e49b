"""How the processes of one prepare run work together through marker files in the output folder alone.

Every process computes the same assignment on its own, so no process group is needed. Ranks other than 0 leave
a completion marker (`clips/done-rRR.json`) and wait for the index; rank 0 waits for every marker, then
writes the dataset. A rank that stops on a bad sample leaves `clips/failed-rRR.json`, and the others raise
its error too. Each marker carries the run's digest, so markers of an earlier run are never taken for this
one's. (A process that crashes otherwise leaves none: torchrun then stops the whole group.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from higgs_tune.data.samples import SampleError
from higgs_tune.files import write_json
from higgs_tune.prepared.assignment import Assignment
from higgs_tune.prepared.finish import finished_index
from higgs_tune.prepared.run import PrepareRun

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.5
_WAIT_LOG_SECONDS = 60.0


def run_digest(source: str, assignment: Assignment, skip_bad: bool, world: int, shard_size: int) -> str:
    """Identity of one run's assignment, so that markers left by an earlier run of other data or settings are
    never taken for this run's."""
    digest = hashlib.sha1(json.dumps([source, skip_bad, world, shard_size]).encode())
    for clip in assignment.clips:
        digest.update(clip.encode())
    for path in sorted(map(str, assignment.unreadable)):
        digest.update(path.encode())
    return digest.hexdigest()


def _marker(out: Path, kind: str, rank: int) -> Path:
    return out / "clips" / f"{kind}-r{rank:02d}.json"


def _marker_digest(out: Path, kind: str, rank: int) -> str | None:
    path = _marker(out, kind, rank)
    try:
        return json.loads(path.read_text(encoding="utf-8"))["digest"]
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def report_done(run: PrepareRun) -> None:
    """Ranks other than 0: this rank's shards are all written."""
    write_json(_marker(run.out, "done", run.rank), {"digest": run.digest})


def report_failure(run: PrepareRun, error: SampleError) -> None:
    """This rank stopped on a bad sample; the others raise the same error instead of waiting forever."""
    marker = {"digest": run.digest, "where": error.where, "problem": error.problem}
    write_json(_marker(run.out, "failed", run.rank), marker)


def wait_for_ranks(run: PrepareRun) -> None:
    """Rank 0: until every other rank has left its completion marker for this run."""
    others = range(1, run.world)
    _wait(
        run,
        lambda: all(_marker_digest(run.out, "done", r) == run.digest for r in others),
        others,
        "the other ranks to finish encoding",
    )


def wait_for_index(run: PrepareRun) -> dict:
    """Ranks other than 0: until rank 0 has written the index, so that every process returns the same
    finished dataset (and a script may go on to train on it)."""
    _wait(run, lambda: finished_index(run.out, run.source) is not None, [0], "rank 0 to write the index")
    return finished_index(run.out, run.source)


def _wait(run: PrepareRun, ready: Callable[[], bool], ranks: Iterable[int], what: str) -> None:
    """Poll the folder until `ready`; a rank of `ranks` that failed on a bad sample left a marker, and its
    error is raised here too."""
    next_log = time.monotonic() + _WAIT_LOG_SECONDS
    while not ready():
        for r in ranks:
            if _marker_digest(run.out, "failed", r) == run.digest:
                failure = json.loads(_marker(run.out, "failed", r).read_text(encoding="utf-8"))
                raise SampleError(failure["where"], failure["problem"])
        if time.monotonic() > next_log:
            log.info("still waiting for %s", what)
            next_log += _WAIT_LOG_SECONDS
        time.sleep(_POLL_SECONDS)
