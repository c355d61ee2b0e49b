"""`eval --baseline` on the tiny models: a report whose rows cover every sample, for both systems."""

import json
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from higgs_tune.config import TrainSettings
from higgs_tune.config_files import load_config
from higgs_tune.evaluation.report import Comparison, Report, compare, summarize
from higgs_tune.evaluation.report_markdown import render_markdown
from higgs_tune.training.trainer import Trainer


@pytest.mark.cli
def test_eval_baseline_report_covers_every_sample(tiny_model_dir, prepared_dir, sample_data_dir, tmp_path):
    from higgs_tune.tiny.eval_models import build_tiny_eval_models

    asr, speaker = build_tiny_eval_models(tmp_path / "eval-models")
    run = tmp_path / "run"
    overrides = [f"model={tiny_model_dir}", f"data={prepared_dir}", f"output_dir={run}", "max_steps=2"]
    Trainer(load_config(TrainSettings, None, [*overrides, "warmup_steps=0"])).run()
    lines = sample_data_dir["manifest_jsonl"].read_text().splitlines()[:3]
    # Paths in the copied lines are relative to the original manifest's folder.
    heldout = sample_data_dir["manifest_jsonl"].parent / "heldout_test.jsonl"
    heldout.write_text("".join(line + "\n" for line in lines))
    out = tmp_path / "eval"
    proc = subprocess.run(
        [
            sys.executable, "-m", "higgs_tune", "eval", "--manifest", str(heldout),
            "--model", str(tiny_model_dir), "--adapter", str(run), "--baseline", "--out", str(out),
            "--asr-model", str(asr), "--speaker-model", str(speaker), "--language", "ar",
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    ids = [json.loads(line)["id"] for line in lines]
    for system in ("base", "finetuned"):
        rows = report["samples"][system]
        assert [r["id"] for r in rows] == ids
        assert all(
            {"wer", "cer", "similarity", "flags", "stopped_by_eos", "transcript"} <= r.keys() for r in rows
        )
        assert report["summary"][system]["samples"] == len(ids)
    assert set(report["comparison"]) == {"better", "worse", "reasons"}
    markdown = (out / "report.md").read_text()
    assert "Fine-tuning" in markdown.splitlines()[2]
    assert all(i in markdown for i in ids)
    assert (out / "wer.png").stat().st_size > 0 and (out / "similarity.png").stat().st_size > 0
    card = ModelCard.load(Path(report["adapter"]) / "adapter" / "README.md")  # eval updated its card
    assert card.data.eval_results[0].metric_value == report["summary"]["finetuned"]["wer"]


def _summary(wer, sim, eos):
    return {
        "samples": 1,
        "wer": wer,
        "cer": wer,
        "similarity": sim,
        "stopped_by_eos": eos,
        "right_length": eos,
        "flags": {},
        "clean": 1,
    }


def _report(summary: dict, samples: dict, comparison: dict, language: str | None = "ar") -> Report:
    """A report as `evaluate` writes it, for a fine-tune against the base model, from its parts."""
    return Report.from_dict(
        {
            "model": "m",
            "adapter": "r",
            "asr_model": "asr",
            "speaker_model": "spk",
            "language": language,
            "summary": summary,
            "samples": samples,
            "comparison": comparison,
        }
    )


@pytest.mark.parametrize(
    "tuned,base,word",
    [
        (_summary(0.1, 0.8, 1.0), _summary(0.5, 0.6, 0.5), "helped"),
        (_summary(0.6, 0.5, 0.5), _summary(0.2, 0.7, 1.0), "hurt"),
        (_summary(0.2, 0.7, 1.0), _summary(0.2, 0.7, 1.0), "made no clear difference"),
        (_summary(0.2, None, 1.0), _summary(0.2, 0.7, 1.0), "hurt"),  # too short to embed counts against
        # Clones that stop at once: a lower WER (nothing said beats babble) and every clip "ended by EOS",
        # but none has the right length, so it is no gain.
        ({**_summary(0.1, None, 1.0), "right_length": 0.0}, _summary(0.5, 0.6, 0.5), "hurt"),
        # Moves within the noise margins are no gain.
        (_summary(0.48, 0.61, 0.5), _summary(0.5, 0.6, 0.5), "made no clear difference"),
    ],
)
def test_verdict_line_tells_at_a_glance(tuned, base, word):
    row = {"id": "a", "wer": 0.1, "similarity": 0.5, "seconds": 1.0, "flags": []}
    report = _report(
        {"finetuned": tuned, "base": base}, {"finetuned": [row], "base": [row]}, {"better": [], "worse": []}
    )
    assert f"**Fine-tuning {word}**" in render_markdown(report)


def test_a_clone_with_no_speech_is_worse_whatever_its_wer_and_each_count_says_why():
    def row(i, wer, flags, sim=None):
        return {"id": i, "wer": wer, "similarity": sim, "flags": flags}

    tuned = [
        row("a", 1.0, ["silent"]),
        row("b", 0.2, []),
        row("c", 0.1, ["too_short"]),
        row("d", 0.2, []),
        row("e", 0.4, [], 0.5),
        row("f", 0.1, [], 0.5),
    ]
    base = [
        row("a", 1.5, ["cut"]),
        row("b", 0.5, []),
        row("c", 0.1, ["too_short"]),
        row("d", 0.2, ["silent"]),
        row("e", 0.4, [], 0.7),
        row("f", 0.4, [], 0.7),  # WER better, similarity worse: counted neither way
    ]
    assert asdict(compare(tuned, base)) == {
        "better": ["b", "d"],
        "worse": ["a", "e"],
        "reasons": {
            "a": "no speech (silent) where the baseline spoke",
            "b": "WER 50.0% -> 20.0%",
            "d": "spoke where the baseline did not (silent)",
            "e": "similarity 0.700 -> 0.500",
        },
    }


def _too_short_report() -> dict:
    """The demo's case: every fine-tuned clip too short to embed and counted worse at an unchanged WER."""

    def row(i, flags, sim, wav="0.wav"):
        counts = {"word_errors": 1, "ref_words": 1, "char_errors": 1, "ref_chars": 1, "stopped_by_eos": True}
        return {"id": i, "wav": wav, "text": "t", "wer": 1.0, "similarity": sim, "seconds": 0.1, **counts} | {
            "flags": flags
        }

    tuned = [row("a", ["too_short"], None), row("b", ["too_short"], None, wav=None)]
    base = [row("a", [], 0.6), row("b", [], None)]
    tuned[0]["similarity_missing"] = "clip shorter than the speaker model's minimum (0.50 s)"
    systems = {"finetuned": tuned, "base": base}
    return _report(
        {name: asdict(summarize(rows)) for name, rows in systems.items()},
        systems,
        asdict(compare(tuned, base)),
        language=None,
    )


def test_report_md_says_why_a_figure_is_na_and_why_a_sample_counts_worse():
    """Every "n/a" in report.md carries its reason, and each sample counted worse says why, in the summary
    and in its own row, though its WER did not move."""
    report = _too_short_report()
    assert report.summary["finetuned"].similarity is None
    markdown = render_markdown(report)
    assert not re.search(r"n/a(?!: \S)", markdown), markdown
    verdict = markdown.splitlines()[2]
    assert (
        "speaker similarity 0.600 (mean of 1 of 2 clips; the others have none) -> n/a: no clip could be "
        "embedded (1: clip shorter than the speaker model's minimum (0.50 s), 1: no audio)" in verdict
    )
    assert "Worse with fine-tuning (2): a (no speech (too_short) where the baseline spoke); b (no speech" in (
        markdown
    )
    a_row = next(line for line in markdown.splitlines() if line.startswith("| a |"))
    assert "n/a: clip shorter than the speaker model's minimum (0.50 s)" in a_row
    assert a_row.endswith("| worse: no speech (too_short) where the baseline spoke |"), a_row
    b_row = next(line for line in markdown.splitlines() if line.startswith("| b |"))
    # Rows of an older report (no `similarity_missing`): the reason follows from the row.
    assert "| n/a: clip shorter than the speaker model's minimum |" in b_row and "| n/a: no audio |" in b_row


def test_verdict_follows_the_samples_when_the_means_do_not_move():
    report = _report(
        {"finetuned": _summary(0.5, 0.6, 0.5), "base": _summary(0.5, 0.6, 0.5)},
        {"finetuned": [], "base": []},
        {"better": [], "worse": ["a", "b"]},
        language=None,
    )
    assert "**Fine-tuning hurt**" in render_markdown(report)
    report.comparison = Comparison(better=["a", "b"], worse=["c"])
    assert "**Fine-tuning helped**" in render_markdown(report)


def test_clones_without_audio_score_as_all_words_missed(tiny_model_dir, sample_data_dir, tmp_path):
    from higgs_tune.evaluation.evaluate import EvalSettings, evaluate
    from higgs_tune.inference.settings import LengthLimit
    from higgs_tune.tiny.eval_models import build_tiny_eval_models

    asr, speaker = build_tiny_eval_models(tmp_path / "eval-models")
    heldout = sample_data_dir["manifest_jsonl"].parent / "heldout_two.jsonl"
    heldout.write_text(
        "".join(line + "\n" for line in sample_data_dir["manifest_jsonl"].read_text().splitlines()[:2])
    )
    nothing = LengthLimit(slack_seconds=0.0, min_seconds=0.0, max_seconds=0.0)
    settings = EvalSettings(asr_model=str(asr), speaker_model=str(speaker), limit=nothing)
    report = evaluate(heldout, str(tiny_model_dir), None, tmp_path / "eval", False, settings)
    rows = report.samples["base"]
    assert len(rows) == 2
    for row in rows:
        assert row["transcript"] == "" and row["wer"] == 1.0 and row["similarity"] is None
    assert report.summary["base"].right_length == 0.0


TRAINED_PROMPT = "Speak as the reference does."


def test_each_system_is_prompted_as_it_was_trained_and_reports_stop_health(
    tiny_model_dir, prepared_dir, sample_data_dir, tmp_path, monkeypatch
):
    """A fine-tune trained with another system prompt clones with it; its baseline (the base model) is
    prompted with the base defaults. Both get teacher-forced stop health on the eval targets."""
    from conftest import train_config

    from higgs_tune.config import PromptSettings
    from higgs_tune.evaluation import evaluate as evaluate_module
    from higgs_tune.evaluation.evaluate import EvalSettings, evaluate
    from higgs_tune.inference.generate import load_for_cloning
    from higgs_tune.inference.settings import LengthLimit
    from higgs_tune.tiny.eval_models import build_tiny_eval_models

    run = tmp_path / "run"
    Trainer(
        train_config(
            tiny_model_dir, prepared_dir, run, "max_steps=1", f"prompt.system_prompt={TRAINED_PROMPT}"
        )
    ).run()
    assert load_for_cloning(str(tiny_model_dir), run)[2].system_prompt == TRAINED_PROMPT
    assert load_for_cloning(str(tiny_model_dir), None)[2] == PromptSettings()

    used = {}
    clone_manifest = evaluate_module.clone_manifest

    def spy(model, processor, samples, out, settings, *args):
        used[out.name] = settings
        return clone_manifest(model, processor, samples, out, settings, *args)

    monkeypatch.setattr(evaluate_module, "clone_manifest", spy)
    asr, speaker = build_tiny_eval_models(tmp_path / "eval-models")
    heldout = sample_data_dir["manifest_jsonl"].parent / "heldout_prompts.jsonl"
    heldout.write_text(
        "".join(line + "\n" for line in sample_data_dir["manifest_jsonl"].read_text().splitlines()[:2])
    )
    short = LengthLimit(min_seconds=0.2, max_seconds=0.4)
    settings = EvalSettings(asr_model=str(asr), speaker_model=str(speaker), limit=short)
    report = evaluate(heldout, str(tiny_model_dir), run, tmp_path / "eval", True, settings)

    assert used["base"] == PromptSettings()
    assert used["finetuned"].system_prompt == TRAINED_PROMPT
    assert report.prompts["base"]["system_prompt"] == PromptSettings().system_prompt
    assert report.prompts["finetuned"]["system_prompt"] == TRAINED_PROMPT
    for system in ("base", "finetuned"):
        health = report.stop_health[system]
        assert 0 < health["eos_prob"] < 1 and 0 <= health["accuracy"] <= 1
        assert 0 <= health["early_stop_risk"] <= 1
        assert all(0 < health[f"eos_prob_codebook_{k}"] < 1 for k in range(8))
    markdown = (tmp_path / "eval" / "report.md").read_text()
    assert "Stop health" in markdown and "early-stop risk" in markdown


def test_eval_models_default_to_those_the_model_folder_carries(tmp_path):
    from higgs_tune.scoring.asr import DEFAULT_ASR_MODEL
    from higgs_tune.scoring.measuring import measuring_models
    from higgs_tune.scoring.speaker import DEFAULT_SPEAKER_MODEL

    assert measuring_models(str(tmp_path)) == (DEFAULT_ASR_MODEL, DEFAULT_SPEAKER_MODEL)
    (tmp_path / "eval-models" / "asr").mkdir(parents=True)
    (tmp_path / "eval-models" / "speaker").mkdir()
    asr, speaker = measuring_models(str(tmp_path))
    assert (asr, speaker) == (str(tmp_path / "eval-models/asr"), str(tmp_path / "eval-models/speaker"))


@pytest.mark.cli
@pytest.mark.parametrize("option", ["--asr-model", "--speaker-model"])
def test_eval_with_an_unloadable_measuring_model_fails_fast_before_cloning(
    tiny_model_dir, sample_data_dir, tmp_path, option
):
    """A hub id that is not cached, with the hub unreachable (and HF_HUB_OFFLINE unset), or a folder that
    holds no model: exit 2 in seconds, one line naming the model and the option, nothing cloned. The other
    measuring model comes from the model folder's eval-models/ (the released default would not load)."""
    import os
    import shutil
    import time

    from higgs_tune.tiny.eval_models import build_tiny_eval_models

    # A model folder that carries eval-models/: the measuring model not named defaults to its own.
    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    build_tiny_eval_models(model)
    (tmp_path / "no-model").mkdir()
    names = {"--asr-model": "nobody/no-such-whisper", "--speaker-model": str(tmp_path / "no-model")}
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # nothing listens there: an unreachable hub
    out = tmp_path / "eval"
    start = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable, "-m", "higgs_tune", "eval", "--manifest", str(sample_data_dir["manifest_jsonl"]),
            "--model", str(model), "--baseline", "--out", str(out), option, names[option],
        ],
        capture_output=True,
        text=True,
        env=env,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if names[option] in line]
    assert len(errors) == 1 and option in errors[0] and "Traceback" not in proc.stderr, proc.stderr
    assert elapsed < 60, elapsed  # process start-up included; hub retries would take minutes
    assert not out.exists() or not list(out.rglob("*.wav"))


def test_the_report_shows_the_text_each_system_was_given_when_its_normalisation_changed_it(
    tiny_model, processor, sample_data_dir, tmp_path
):
    """A clone's row records the text as its prompt gave it (`spoken_text`); report.md shows it beside
    the text as written for the system whose text normalisation changed it, and only for that one."""
    from dataclasses import replace

    from higgs_tune.config import PromptSettings
    from higgs_tune.data.manifests import read_manifest
    from higgs_tune.inference.clone import clone_manifest
    from higgs_tune.inference.settings import LengthLimit, SamplingSettings

    sample = replace(read_manifest(sample_data_dir["manifest_jsonl"])[0], text="ذَهَبَ الوَلَدُ إِلَى المَدْرَسَةِ")
    limit = LengthLimit(min_seconds=0.2, max_seconds=0.2)
    plain = PromptSettings(text_normalisation="arabic_no_diacritics")
    rows = {
        name: clone_manifest(
            tiny_model, processor, [sample], tmp_path / name, settings, SamplingSettings(), limit
        )
        for name, settings in (("finetuned", plain), ("base", PromptSettings()))
    }
    assert rows["finetuned"][0]["spoken_text"] == "ذهب الولد الى المدرسة"
    assert rows["base"][0]["spoken_text"] == rows["base"][0]["text"] == sample.text
    for row in (*rows["finetuned"], *rows["base"]):
        row.update(wer=0.1, similarity=0.5)
    report = _report(
        {"finetuned": _summary(0.1, 0.5, 1.0), "base": _summary(0.1, 0.5, 1.0)},
        rows,
        {"better": [], "worse": []},
    )
    text = render_markdown(report)
    assert text.count("was given: ذهب الولد الى المدرسة") == 1 and sample.text in text


def test_eval_refuses_a_used_out_folder_before_any_model_loads(tmp_path, run_cli):
    out = tmp_path / "eval"
    (out / "finetuned").mkdir(parents=True)
    (out / "finetuned" / "mine.wav").write_bytes(b"the user's")
    (out / "report.md").write_text("an earlier report")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, _, err = run_cli(
        "eval", "--manifest", tmp_path / "absent.jsonl", "--model", tmp_path / "no-model", "--out", out
    )
    assert code == 2 and "is not empty" in err and "--overwrite" in err and "Traceback" not in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_eval_overwrite_deletes_only_an_earlier_evals_outputs(tmp_path):
    from higgs_tune.evaluation.evaluate import EVAL_OUTPUTS, check_eval_folder

    out = tmp_path / "eval"
    for name in EVAL_OUTPUTS:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("old")
    (out / "notes.txt").write_text("the user's")
    check_eval_folder(out, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_eval_settings_are_frozen_refuse_unknown_fields_and_check_their_bounds(tmp_path, run_cli):
    """`EvalSettings` is a frozen pydantic model: a typo'd field or a batch of 0 is refused when it is made,
    and `eval --batch-size 0` is one line naming the option, exit 2, before anything loads."""
    from pydantic import ValidationError

    from higgs_tune.evaluation.evaluate import EvalSettings

    settings = EvalSettings(batch_size=2)
    with pytest.raises(ValidationError):
        settings.batch_size = 3
    from higgs_tune.command_settings import SettingsError

    for bad, says in (
        ({"batch_size": 0}, "--batch-size: input should be greater than or equal to 1"),
        ({"batch_sise": 2}, "--batch-sise: not a setting of this command"),
    ):
        with pytest.raises(SettingsError, match=says):
            EvalSettings(**bad)
    out = tmp_path / "eval"
    code, _, err = run_cli(
        "eval", "--manifest", tmp_path / "absent.jsonl", "--model", tmp_path / "no-model", "--out", out,
        "--batch-size", "0",
    )  # fmt: skip
    assert code == 2 and "--batch-size" in err and "Traceback" not in err and not out.exists()
