"""Progress at scale: without a terminal (nohup, Slurm) every long stage logs periodic lines with its rate,
through the one helper `logs.Progress`; on a terminal it is a tqdm bar."""

import logging

from conftest import entry, write_jsonl

from higgs_tune import logs
from higgs_tune.data.validate import validate_manifest


def test_without_a_terminal_validate_logs_its_progress_with_a_rate(tmp_path, make_wav, monkeypatch, caplog):
    for i in range(3):
        make_wav(f"c{i}.wav", seed=i)
    records = [entry(f"s{n}", ref=f"c{n % 3}.wav", audio=f"c{(n + 1) % 3}.wav") for n in range(30)]
    monkeypatch.setattr(logs, "PROGRESS_EVERY", 0.0)  # a line per item: the stage is "long"
    with caplog.at_level(logging.INFO, logger="higgs_tune.progress"):
        validate_manifest(write_jsonl(tmp_path / "m.jsonl", records))
    lines = [r.getMessage() for r in caplog.records if r.name == "higgs_tune.progress"]
    clips = [line for line in lines if line.startswith("checking clips: ")]
    samples = [line for line in lines if line.startswith("checking samples: ")]
    assert "3/3 in " in clips[-1] and " clip/s" in clips[-1]
    assert len(samples) >= 30 and "30/30 in " in samples[-1] and " sample/s" in samples[-1]
    assert "about" in samples[0] and "s left" in samples[0]


def test_a_short_stage_logs_nothing_and_another_rank_never(monkeypatch, caplog):
    with caplog.at_level(logging.INFO, logger="higgs_tune.progress"):
        assert list(logs.Progress(range(5), desc="quick", unit="item")) == list(range(5))
        monkeypatch.setattr(logs, "PROGRESS_EVERY", 0.0)
        monkeypatch.setenv("RANK", "1")
        assert list(logs.Progress(range(5), desc="other rank", unit="item")) == list(range(5))
    assert not [r for r in caplog.records if r.name == "higgs_tune.progress"]
