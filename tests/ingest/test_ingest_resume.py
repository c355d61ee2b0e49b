"""A killed ingest leaves no half-written corpus, and a re-run finishes it exactly as one run would have."""

import subprocess
import sys
import time

import pytest
from speech import write_ljspeech

from higgs_tune.files import write_json
from higgs_tune.ingest.run import ingest
from higgs_tune.ingest.settings import FilterSettings, IngestSettings, SliceSettings

OPTIONS = ("--max-seconds", "8", "--chunk-size", "2")
SETTINGS = IngestSettings(
    slicing=SliceSettings(max_seconds=8.0), filters=FilterSettings(max_seconds=8.0), chunk_size=2
)


def test_a_killed_run_resumes_to_the_same_corpus(tmp_path):
    source = write_ljspeech(tmp_path / "lj", clips=16)
    ingest(str(source), tmp_path / "whole", SETTINGS)
    corpus = tmp_path / "killed"
    command = [sys.executable, "-m", "higgs_tune", "ingest", str(source), "--out", str(corpus), *OPTIONS]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (corpus / "parts" / "part-000001.jsonl").exists():
            assert process.poll() is None and time.monotonic() < deadline, "ingest ended before it was killed"
            time.sleep(0.01)
        process.kill()
        process.wait()
    finally:
        process.kill()
    done = sorted(p.name for p in (corpus / "parts").glob("part-*.jsonl"))
    if len(done) == 8:
        pytest.skip("the run finished all chunks before the kill landed")  # a busy machine; nothing to test
    assert not (corpus / "utterances.jsonl").exists()  # only ever written whole, at the end
    finished = {name: (corpus / "parts" / name).stat().st_mtime_ns for name in done}
    summary = ingest(str(source), corpus, SETTINGS)
    assert summary.kept == 16
    # the re-run skipped the finished chunks
    assert {name: (corpus / "parts" / name).stat().st_mtime_ns for name in done} == finished
    for name in ("utterances.jsonl", "rejected.jsonl"):
        assert (corpus / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    assert sorted(p.name for p in (corpus / "clips").glob("*.flac")) == sorted(
        p.name for p in (tmp_path / "whole" / "clips").glob("*.flac")
    )


def test_ranks_split_the_chunks_without_overlap(tmp_path, monkeypatch):
    source = write_ljspeech(tmp_path / "lj", clips=6)
    ingest(str(source), tmp_path / "whole", SETTINGS)
    corpus = tmp_path / "ranks"
    monkeypatch.setenv("WORLD_SIZE", "2")
    for rank in ("1", "0"):  # rank 1 first: rank 0 then finds its chunks done and assembles at once
        monkeypatch.setenv("RANK", rank)
        if rank == "1":
            corpus.mkdir()  # rank 0 records the settings; here rank 1 starts first
            write_json(corpus / "ingest.json", {"source": str(source), "settings": SETTINGS.recorded()})
        summary = ingest(str(source), corpus, SETTINGS)
        assert (summary is None) == (rank == "1")
        parts = sorted(p.name for p in (corpus / "parts").glob("part-*.jsonl"))
        assert parts == (["part-000001.jsonl"] if rank == "1" else [f"part-00000{i}.jsonl" for i in range(3)])
    assert (corpus / "utterances.jsonl").read_bytes() == (
        tmp_path / "whole" / "utterances.jsonl"
    ).read_bytes()
