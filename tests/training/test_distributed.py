"""Two real processes (torchrun, gloo on CPU) train exactly like one with the same global batch, and resume.

Launched as `torchrun --standalone --nproc_per_node 2 -m higgs_tune.cli train ...`, the command users
run, so accelerate, DDP, the batch plan's sharding, the step-wide label counts summed over ranks and the
rank-0-only logging and checkpointing are all exercised together.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

import higgs_tune
from higgs_tune.config import TrainSettings
from higgs_tune.config_files import load_config
from higgs_tune.training.trainer import Trainer

STEPS = 4
COMMON = [
    f"max_steps={STEPS}",
    "save_steps=2",
    "save_total_limit=null",
    "eval_steps=2",
    "logging_steps=1",
    "warmup_steps=0",
    "learning_rate=1e-3",
    "lora.dropout=0",
    "seed=3",
]


def _torchrun(tiny_model_dir: Path, prepared_dir: Path, out: Path, *args: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(higgs_tune.__file__).parents[1]), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "higgs_tune.cli", "train", "--model", str(tiny_model_dir), "--data", str(prepared_dir)]
    cmd += ["--out", str(out), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _losses(run_dir: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows if "loss" in r}


@pytest.fixture(scope="module")
def two_process_run(tiny_model_dir, prepared_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp") / "run"
    _torchrun(tiny_model_dir, prepared_dir, out, *COMMON, "per_device_train_batch_size=2")
    return out


def test_two_processes_match_one_with_the_same_global_batch(
    two_process_run, tiny_model_dir, prepared_dir, tmp_path
):
    one = tmp_path / "one"
    overrides = [f"model={tiny_model_dir}", f"data={prepared_dir}", f"output_dir={one}"]
    Trainer(load_config(TrainSettings, None, [*overrides, *COMMON, "per_device_train_batch_size=4"])).run()
    single, double = _losses(one), _losses(two_process_run)
    assert sorted(double) == list(range(1, STEPS + 1)), "rank 0 alone logs, once per step"
    # After the first step the weights have passed through Adam, which turns the summation order of a
    # near-zero gradient entry (one batch of 4 against two of 2) into a difference of up to the step size:
    # the loss barely feels it, the gradient norm a little more, so it gets the looser tolerance.
    for step in single:
        for key, rel in (("loss", 1e-5), ("grad_norm", 1e-4), ("lr", 1e-7)):
            assert double[step][key] == pytest.approx(single[step][key], rel=rel), (step, key)
    evals = [
        [
            json.loads(line)["eval_loss"]
            for line in (run / "metrics.jsonl").read_text().splitlines()
            if "eval" in line
        ]
        for run in (one, two_process_run)
    ]
    assert evals[0] == pytest.approx(evals[1], rel=1e-5) and len(evals[0]) == 2
    # Every process saved its RNG state into the one checkpoint that rank 0 put in place.
    state = two_process_run / "checkpoint-2" / "state"
    assert (state / "rng_state_0.json").is_file() and (state / "rng_state_1.json").is_file()
    assert not list(two_process_run.glob(".tmp-checkpoint-*"))


def test_two_process_token_budget_run_resumes_exactly(tiny_model_dir, prepared_dir, tmp_path):
    """Token budgets under DDP: ranks take different micro-batch sizes; stopping after a checkpoint and
    resuming gives the uninterrupted run's losses, LoRA dropout (each rank's own random state) included."""
    budget = [
        "max_tokens_per_batch=400",
        "max_seq_len=400",
        "gradient_accumulation_steps=2",
        "lora.dropout=0.1",
    ]
    full = tmp_path / "full"
    _torchrun(tiny_model_dir, prepared_dir, full, *COMMON, *budget)
    plan = json.loads((full / "data_plan.json").read_text())
    assert plan["max_tokens_per_batch"] == 400 and plan["padding_fraction_epoch0"] < 0.05
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(full / "checkpoint-2", resumed / "checkpoint-2")
    _torchrun(tiny_model_dir, prepared_dir, resumed, "--resume", *COMMON, *budget)
    expected, got = _losses(full), _losses(resumed)
    assert sorted(expected) == [1, 2, 3, 4] and sorted(got) == [3, 4]
    for step, row in got.items():
        assert row["loss"] == pytest.approx(expected[step]["loss"], rel=1e-5), step
        assert row["grad_norm"] == pytest.approx(expected[step]["grad_norm"], rel=1e-4), step


def test_shipped_accelerate_configs_load_and_say_what_the_docs_say():
    configs = Path(__file__).parents[2] / "configs"
    loaded = {
        n: load_config_from_file(str(configs / f"accelerate_{n}.yaml"))
        for n in ("ddp", "fsdp", "zero2", "zero3")
    }
    assert {n: c.distributed_type.value for n, c in loaded.items()} == {
        "ddp": "MULTI_GPU",
        "fsdp": "FSDP",
        "zero2": "DEEPSPEED",
        "zero3": "DEEPSPEED",
    }
    fsdp = loaded["fsdp"].fsdp_config
    assert fsdp["fsdp_sharding_strategy"] == "FULL_SHARD" and fsdp["fsdp_use_orig_params"] is True
    assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert fsdp["fsdp_transformer_layer_cls_to_wrap"] == "HiggsAudioV2DecoderLayer"
    assert loaded["zero2"].deepspeed_config["zero_stage"] == 2
    zero3 = loaded["zero3"].deepspeed_config
    assert zero3["zero_stage"] == 3 and zero3["zero3_save_16bit_model"] is True
    for c in loaded.values():  # the trainer fills these from the run config
        assert "gradient_accumulation_steps" not in c.deepspeed_config
        assert "gradient_clipping" not in c.deepspeed_config
