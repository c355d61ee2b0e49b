"""`prefs` on a tiny model that stops: trained on two prompts until it says them and ends by its stream EOS,
then sampled hot, it gives candidates that differ (the right length, or stopped far too early), so pairs
really exist. The pairs put the better candidate first, a killed run resumes to the same folder, and the
scores are those `eval` gives the same clips.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import fast_tiny_eval_models

from higgs_tune.data.audio import TARGET_SR
from higgs_tune.data.manifests import read_manifest
from higgs_tune.errors import UserError
from higgs_tune.inference.settings import LengthLimit, SamplingSettings
from higgs_tune.inference.speech_checks import check_speech
from higgs_tune.preferences.reward import ALWAYS_WORST
from higgs_tune.preferences.run import PrefsSettings, make_preferences
from higgs_tune.prepared.dataset import PreparedData
from higgs_tune.tiny.memorise import memorise

SRC = Path(__file__).resolve().parents[2] / "src"
# Enough steps at this rate for the tiny model to end both prompts at their own length (30 are not: most
# candidates then stop far too early; at 3e-3, 60 are not); sampled this hot, some candidates still stop far
# too early (too short: unusable) and the rest do not, so pairs exist.
STEPS, LEARNING_RATE = 45, 1e-2
TEMPERATURE, CANDIDATES, SEED = 1.5, 4, 0
MAX_SECONDS = 2.0  # the targets are 1.3-1.5 s: room to run late, and a cap on a candidate that never stops


@dataclass(frozen=True)
class StoppingModel:
    model: Path
    checkpoint: Path
    manifest: Path
    asr: Path
    speaker: Path
    target_frames: dict[str, int]  # the length of each prompt's memorised target, by sample id


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread here and in the CLI subprocesses (`OMP_NUM_THREADS`), so their candidates compare bit for
    bit; one is also faster than two on a shared two-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def stopping(tmp_path_factory, tiny_model_dir, sample_data_dir) -> StoppingModel:
    """The tiny model memorised on the first two samples (full fine-tuning), their manifest, and the tiny
    eval models (its Whisper capped at 24 tokens)."""
    root = tmp_path_factory.mktemp("stopping")
    source = sample_data_dir["manifest_jsonl"]
    manifest = source.parent / "two_prompts.jsonl"  # beside the clips its relative paths name
    manifest.write_text("".join(source.read_text().splitlines(keepends=True)[:2]))
    checkpoint = memorise(tiny_model_dir, read_manifest(manifest), root / "memorise", STEPS, LEARNING_RATE)
    asr, speaker = fast_tiny_eval_models(root)
    data = PreparedData(root / "memorise" / "prepared")
    targets = {r["id"]: data[i].target_codes.shape[1] for i, r in enumerate(data.records)}
    return StoppingModel(tiny_model_dir, checkpoint, manifest, asr, speaker, targets)


def prefs_settings(m: StoppingModel) -> PrefsSettings:
    """What the CLI arguments of `cli_args` make (the resume test compares the two runs' folders)."""
    return PrefsSettings(
        candidates=CANDIDATES,
        sampling=SamplingSettings(temperature=TEMPERATURE, seed=SEED),
        limit=LengthLimit(max_seconds=MAX_SECONDS),
        asr_model=str(m.asr),
        speaker_model=str(m.speaker),
        batch_size=1,
    )


def cli_args(m: StoppingModel, out: Path) -> list[str]:
    args = ["--model", m.model, "--adapter", m.checkpoint, "--manifest", m.manifest, "--out", out]
    args += ["--candidates", CANDIDATES, "--temperature", TEMPERATURE, "--seed", SEED]
    args += ["--max-seconds", MAX_SECONDS, "--batch-size", 1]
    args += ["--asr-model", m.asr, "--speaker-model", m.speaker]
    return [sys.executable, "-m", "higgs_tune.cli", "prefs", *map(str, args)]


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}


def run_prefs(m: StoppingModel, out: Path) -> None:
    """`prefs` in this process with the settings of `prefs_settings`."""
    make_preferences(str(m.model), m.checkpoint, read_manifest(m.manifest), out, prefs_settings(m))


@pytest.fixture(scope="module")
def prefs(stopping, tmp_path_factory) -> Path:
    """One uninterrupted `prefs` run on the memorised model, in this process."""
    out = tmp_path_factory.mktemp("prefs") / "prefs"
    run_prefs(stopping, out)
    return out


def records(out: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((out / "prompts").glob("*.json"))}


def pair_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "prefs.jsonl").read_text().splitlines()]


def test_pairs_of_a_model_that_stops_put_the_better_candidate_first(prefs, stopping) -> None:
    prompts = list(records(prefs).values())
    candidates = [c for r in prompts for c in r["candidates"]]
    # Memorised: some candidate ends by EOS where the prompt's target ends. Sampled this hot, one codebook
    # may say its EOS a step before its slot, and the earliest EOS of any codebook ends a clip (as in the
    # original implementation), so the end may come one frame early.
    for r in prompts:
        ends = [c["frames"] for c in r["candidates"] if c["stopped_by_eos"]]
        target = stopping.target_frames[r["id"]]
        assert any(target - 1 <= end <= target for end in ends), (r["id"], stopping.target_frames, ends)
    usable = [c for c in candidates if c["reward"] is not None]
    assert usable and all(c["stopped_by_eos"] and not ALWAYS_WORST & set(c["flags"]) for c in usable)
    assert all(ALWAYS_WORST & set(c["flags"]) for c in candidates if c["reward"] is None)
    lines = pair_lines(prefs)
    assert lines, [[(c["frames"], c["flags"]) for c in r["candidates"]] for r in prompts]
    for line in lines:
        chosen, rejected = line["chosen"]["reward"], line["rejected"]["reward"]
        assert chosen is not None, line  # an unusable candidate (null reward, -inf) is never chosen
        assert chosen >= (-math.inf if rejected is None else rejected), line
        assert np.load(prefs / line["ref_codes"]).shape[0] == 8
        for side in (line["chosen"], line["rejected"]):
            assert np.load(prefs / side["codes"]).shape == (8, side["frames"]), side
    summary = json.loads((prefs / "summary.json").read_text())
    assert summary["prompts"] == len(prompts) == 2
    assert summary["pairs"] == len(lines) == sum(len(r["pairs"]) for r in prompts)
    paired = sorted({line["id"] for line in lines})
    assert paired == sorted(r["id"] for r in prompts if r["pairs"])
    assert sorted(paired + summary["skipped_all_alike"]) == sorted(r["id"] for r in prompts)


def test_prefs_killed_after_its_first_prompt_resumes_to_what_an_uninterrupted_run_writes(
    prefs, stopping, tmp_path, caplog
) -> None:
    """Killed (SIGKILL) as a real `higgs-tune prefs` process once its first prompt is written, then run
    again: every prompt once, no pair twice, and every file as an uninterrupted run writes it."""
    out = tmp_path / "prefs"
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(cli_args(stopping, out), env=cli_env(), stdout=log, stderr=log)
        while proc.poll() is None and not list((out / "prompts").glob("*.json")):
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-3000:]
    assert len(records(out)) == 1 and not (out / "prefs.jsonl").exists()
    # The rerun in this process (a second CLI start costs seconds): it continues the folder only if the
    # settings the CLI recorded are those of `prefs_settings`.
    with caplog.at_level(logging.INFO, logger="higgs_tune"):
        run_prefs(stopping, out)
    assert "2 prompts, 1 already done" in caplog.text
    resumed = records(out)
    assert sorted(r["id"] for r in resumed.values()) == sorted(x.id for x in read_manifest(stopping.manifest))
    assert resumed == records(prefs)
    lines = pair_lines(out)
    assert len({(x["chosen"]["codes"], x["rejected"]["codes"]) for x in lines}) == len(lines)
    assert lines == pair_lines(prefs)
    for name in ("summary.json", "settings.json", "prompt.json"):
        assert json.loads((out / name).read_text()) == json.loads((prefs / name).read_text()), name
    codes = sorted(p.name for p in (out / "codes").glob("*.npy"))
    assert codes == sorted(p.name for p in (prefs / "codes").glob("*.npy"))
    assert all(np.array_equal(np.load(out / "codes" / n), np.load(prefs / "codes" / n)) for n in codes)


def test_candidate_scores_are_those_eval_gives_the_same_clips(prefs, stopping, processor, tmp_path) -> None:
    """The paired candidates of each prompt, decoded from their codes and scored by `eval`'s own scoring
    (`evaluate.score_systems`, reading the clips as eval reads its clones), get the transcripts, WER, CER and
    similarity the prompt's record holds; the speech checks of the audio give its flags."""
    from higgs_tune.evaluation.evaluate import EvalSettings, score_systems
    from higgs_tune.model.codes import decode_codes
    from higgs_tune.scoring.measuring import load_measuring_models

    samples = {x.id: x for x in read_manifest(stopping.manifest)}
    scored = [r for r in records(prefs).values() if r["pairs"]]
    assert scored
    s = EvalSettings(asr_model=str(stopping.asr), speaker_model=str(stopping.speaker), batch_size=1)
    measuring = load_measuring_models(s.asr_model, s.speaker_model, s.language, s.device, s.batch_size)
    for record in scored:
        sample, used = samples[record["id"]], sorted({i for pair in record["pairs"] for i in pair})
        rows, audios = [], []
        for i in used:
            audios.append(decode_codes(processor, np.load(prefs / "codes" / f"{record['key']}-{i}.npy")))
            wav = tmp_path / "prefs" / f"{record['key']}-{i}.wav"  # float: the very samples prefs scored
            wav.parent.mkdir(exist_ok=True)
            sf.write(str(wav), audios[-1], TARGET_SR, subtype="FLOAT")
            rows.append({"id": sample.id, "wav": wav.name})
        score_systems({"prefs": rows}, [sample], tmp_path, s, measuring)
        for i, row, audio in zip(used, rows, audios, strict=True):
            candidate = record["candidates"][i]
            for key in ("transcript", "wer", "cer", "similarity"):
                assert row[key] == candidate[key], (record["id"], i, key)
            checks = check_speech(audio, sample.text, candidate["stopped_by_eos"], sr=TARGET_SR)
            assert checks.flags == candidate["flags"], (record["id"], i)


def test_prefs_names_a_missing_manifest_a_non_run_adapter_or_one_candidate_before_loading_any_model(
    sample_data_dir, tmp_path
) -> None:
    """In process (`cli.main` turns these errors into one line and exit 2): the model named does not exist,
    so any other error would mean it was loaded first."""
    from typer.testing import CliRunner

    from higgs_tune.cli import app

    def prefs_error(*args: object) -> BaseException:
        common = ["prefs", "--model", tmp_path / "no-such-model", "--out", tmp_path / "prefs"]
        result = CliRunner().invoke(app, [*map(str, common), *map(str, args)])
        assert isinstance(result.exception, UserError | FileNotFoundError), result.exception
        assert "\n" not in str(result.exception)
        return result.exception

    missing = tmp_path / "no-prompts.jsonl"
    assert str(missing) in str(prefs_error("--manifest", missing))
    not_a_run = tmp_path / "not-a-run"
    not_a_run.mkdir()
    message = str(prefs_error("--manifest", sample_data_dir["manifest_jsonl"], "--adapter", not_a_run))
    assert f"{not_a_run}: neither a checkpoint nor a run folder" in message
    message = str(prefs_error("--manifest", sample_data_dir["manifest_jsonl"], "--candidates", 1))
    assert message == "--candidates: input should be greater than or equal to 2 (got 1)"
    message = str(
        prefs_error("--manifest", sample_data_dir["manifest_jsonl"], "--candidates", 1, "--top-p", 0)
    )
    assert message == (
        "--candidates: input should be greater than or equal to 2 (got 1); "
        "--top-p: input should be greater than 0 (got 0.0)"
    )
    assert not (tmp_path / "prefs").exists()


def test_the_loop_through_the_cli_sft_then_prefs_then_dpo_then_eval_against_the_sft_adapter(
    stopping, tmp_path
) -> None:
    """The README's round, as a user types it, on the memorised model (merged into a model folder to stand
    for a base that speaks): a short SFT LoRA run, `prefs` from it, `train --objective dpo` starting from
    it, and `eval --baseline-adapter` comparing the two adapters."""
    from typer.testing import CliRunner

    from higgs_tune.cli import app

    def run(*args: object) -> str:
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, (args[0], result.output[-3000:], result.exception)
        return result.output

    base, sft, prefs, dpo = (tmp_path / name for name in ("base", "sft", "prefs", "dpo"))
    run("merge", "--model", stopping.model, "--adapter", stopping.checkpoint, "--out", base)
    prepared = stopping.checkpoint.parents[1] / "prepared"
    quiet = ["report_to=[none]", "warmup_steps=0", "eval_fraction=0", "per_device_train_batch_size=2"]
    run(
        "train",
        "--model",
        base,
        "--data",
        prepared,
        "--out",
        sft,
        "max_steps=2",
        "learning_rate=1e-5",
        *quiet,
    )
    scoring = ["--asr-model", stopping.asr, "--speaker-model", stopping.speaker, "--batch-size", 1]
    run(
        "prefs",
        "--model",
        base,
        "--adapter",
        sft,
        "--manifest",
        stopping.manifest,
        "--out",
        prefs,
        "--candidates",
        CANDIDATES,
        "--temperature",
        TEMPERATURE,
        "--max-seconds",
        MAX_SECONDS,
        *scoring,
    )
    assert pair_lines(prefs), "the SFT adapter's candidates gave no pair"
    run(
        "train",
        "--objective",
        "dpo",
        "--model",
        base,
        "--prefs",
        prefs,
        "--init-adapter",
        sft,
        "--out",
        dpo,
        "max_steps=3",
        "learning_rate=1e-3",
        "logging_steps=1",
        *quiet,
    )
    rows = [json.loads(line) for line in (dpo / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[0]["reward_margin"] == pytest.approx(0, abs=1e-2)
    assert {"reward_accuracy", "chosen_logp", "rejected_logp", "dpo_loss"} <= set(rows[-1])
    card = (dpo / "checkpoint-3" / "adapter" / "README.md").read_text()
    assert "objective: DPO" in card and str(sft) in card
    out = run(
        "eval",
        "--model",
        base,
        "--manifest",
        stopping.manifest,
        "--out",
        tmp_path / "eval",
        "--adapter",
        dpo,
        "--baseline-adapter",
        sft,
        "--greedy",
        *scoring,
    )
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert len(report["summary"]) == 2 and "report.md" in out
