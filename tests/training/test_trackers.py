"""Experiment trackers: one short run logs to TensorBoard, wandb (offline) and trackio (local), and each of
them holds the values of metrics.jsonl under the same names, the run config and the previews' audio.

The run is a subprocess of the real CLI, so that wandb's and trackio's process-wide state (trackio reads
TRACKIO_DIR once, at import) stays out of the test process, and so that a guard installed at its start
(sitecustomize) records any attempt to reach beyond this machine: there must be none.
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import train_config

from higgs_tune.config_files import ConfigError

# Installed as sitecustomize in the training subprocess: refuses, and records, every DNS lookup and
# connection that is not to this machine (wandb talks to its own local service).
NETWORK_GUARD = """
import os, socket
_log = os.environ["NETWORK_ATTEMPTS_LOG"]
_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo
LOCAL = ("127.0.0.1", "::1", "localhost", None)

def _refuse(what):
    with open(_log, "a") as f:
        f.write(what + "\\n")
    raise OSError("network access refused in tests: " + what)

def connect(self, address):
    if self.family == socket.AF_UNIX or (isinstance(address, tuple) and address[0] in LOCAL):
        return _connect(self, address)
    _refuse(f"connect {address!r}")

def getaddrinfo(host, *args, **kwargs):
    return _getaddrinfo(host, *args, **kwargs) if host in LOCAL else _refuse(f"getaddrinfo {host!r}")

socket.socket.connect = connect
socket.getaddrinfo = getaddrinfo
"""


@pytest.fixture(scope="module")
def tracked_run(tiny_model_dir, prepared_dir, tmp_path_factory) -> dict[str, Path]:
    """Two steps with a held-out evaluation and previews at step 2, logged to all three trackers."""
    tmp = tmp_path_factory.mktemp("trackers")
    guard = tmp / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(NETWORK_GUARD)
    paths = {"run": tmp / "run", "wandb": tmp / "wandb", "trackio": tmp / "trackio", "net": tmp / "net.log"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "TRACKIO_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(guard), env.get("PYTHONPATH", "")]),
        NETWORK_ATTEMPTS_LOG=str(paths["net"]),
        WANDB_MODE="offline",
        WANDB_DIR=str(paths["wandb"]),
        WANDB_SILENT="true",
        TRACKIO_DIR=str(paths["trackio"]),
        HF_HUB_OFFLINE="1",
    )
    paths["wandb"].mkdir()
    args = [
        f"--model={tiny_model_dir}", f"--data={prepared_dir}", f"--out={paths['run']}",
        "report_to=[tensorboard,wandb,trackio]", "max_steps=2", "logging_steps=1", "warmup_steps=0",
        "eval_steps=2", "eval_fraction=0.1", "save_steps=100", "preview_steps=2", "num_preview_prompts=1",
        "per_device_train_batch_size=2",
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "higgs_tune.cli", "train", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return paths


def _metrics_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _numbers_by_step(rows: list[dict]) -> dict[int, dict[str, float]]:
    """metrics.jsonl as the trackers see it: per step, every number but the step itself."""
    by_step: dict[int, dict[str, float]] = {}
    for row in rows:
        numbers = {k: v for k, v in row.items() if k != "step" and isinstance(v, int | float)}
        by_step.setdefault(row["step"], {}).update(numbers)
    return by_step


def _wandb_records(wandb_dir: Path) -> list:
    """The records of the one offline run's transaction log (a LevelDB-style log of 32 KiB blocks, each
    record a 7-byte header: CRC, length, kind; kinds 1 full, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    (path,) = wandb_dir.glob("wandb/offline-run-*/run-*.wandb")
    data, block, header = path.read_bytes(), 32768, 7
    assert data[:4] == b":W&B"
    pos, parts, records = header, [], []
    while pos + header <= len(data):
        if block - pos % block < header:  # the rest of a block too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + header])
        if kind == 0:
            break
        parts.append(data[pos + header : pos + header + length])
        pos += header + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            records.append(record)
            parts = []
    return records


def _wandb_history(records: list) -> dict[int, dict]:
    history: dict[int, dict] = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            row = {
                item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item
            }
            history.setdefault(row["_step"], {}).update(row)
    return history


def test_every_tracker_holds_the_metrics_config_and_audio(tracked_run):
    expected = _numbers_by_step(_metrics_rows(tracked_run["run"]))
    assert set(expected) == {1, 2} and {"loss", "audio_loss", "lr", "eval_loss"} <= expected[2].keys()

    records = _wandb_records(tracked_run["wandb"])
    history = _wandb_history(records)
    for step, numbers in expected.items():
        for key, value in numbers.items():
            assert history[step][key] == pytest.approx(value, rel=1e-9), (step, key)
    config = {
        i.key: json.loads(i.value_json) for r in records if r.HasField("config") for i in r.config.update
    }
    assert config["learning_rate"] == 1e-4 and config["report_to"] == ["tensorboard", "wandb", "trackio"]
    (preview,) = [k.removesuffix("/_type") for k in history[2] if k.endswith("/_type")]
    assert history[2][f"{preview}/_type"] == "audio-file"
    run_files = next(tracked_run["wandb"].glob("wandb/offline-run-*/files"))
    assert (run_files / history[2][f"{preview}/path"]).stat().st_size > 1000

    db = sqlite3.connect(tracked_run["trackio"] / "higgs-tune.db")
    logged: dict[int, dict] = {}
    for step, metrics in db.execute("SELECT step, metrics FROM metrics WHERE run_name = 'run'"):
        logged.setdefault(step, {}).update(json.loads(metrics))
    for step, numbers in expected.items():
        for key, value in numbers.items():
            assert logged[step][key] == pytest.approx(value, rel=1e-9), (step, key)
    (config_text,) = db.execute("SELECT config FROM configs WHERE run_name = 'run'").fetchone()
    assert json.loads(config_text)["max_steps"] == 2
    audio = logged[2][preview]
    assert audio["_type"] == "trackio.audio"
    assert (tracked_run["trackio"] / "media" / audio["file_path"]).stat().st_size > 1000

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tracked_run["run"] / "tensorboard"), size_guidance={"audio": 0}).Reload()
    assert events.Scalars("train/loss")[0].value == pytest.approx(expected[1]["loss"], rel=1e-6)
    assert events.Scalars("eval_loss")[0].value == pytest.approx(expected[2]["eval_loss"], rel=1e-6)
    assert preview in events.Tags()["audio"] and "config/text_summary" in events.Tags()["tensors"]


def test_no_tracker_reaches_the_network(tracked_run):
    attempts = tracked_run["net"].read_text() if tracked_run["net"].exists() else ""
    assert attempts == "", f"tried to reach the network:\n{attempts}"


def test_report_to_is_checked(tiny_model_dir, prepared_dir, tmp_path):
    from higgs_tune.training.trackers import RunTensorBoard, log_with

    with pytest.raises(ConfigError) as e:
        train_config(tiny_model_dir, prepared_dir, tmp_path, "report_to=[tensorbord]")
    assert "unknown tracker 'tensorbord'; choose from tensorboard, wandb, trackio, none" in str(e.value)
    with pytest.raises(ConfigError, match="'none' cannot be combined"):
        train_config(tiny_model_dir, prepared_dir, tmp_path, "report_to=[none,wandb]")
    assert (
        log_with(train_config(tiny_model_dir, prepared_dir, tmp_path, "report_to=[none]").report_to, tmp_path)
        is None
    )
    (tensorboard,) = log_with(train_config(tiny_model_dir, prepared_dir, tmp_path).report_to, tmp_path)
    assert isinstance(tensorboard, RunTensorBoard)


def test_a_tracker_whose_package_is_missing_is_a_config_error(
    tiny_model_dir, prepared_dir, tmp_path, monkeypatch
):
    """accelerate would drop it silently (and log nothing there); the run stops naming the install."""
    import importlib.util

    from higgs_tune.training.trackers import log_with

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "wandb" else find_spec(name)
    )
    with pytest.raises(ConfigError, match="report_to: wandb needs the wandb package: pip install wandb"):
        log_with(["tensorboard", "wandb"], tmp_path)
