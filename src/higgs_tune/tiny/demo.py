"""`higgs-tune demo`: the whole loop on the built-in default, on CPU in a few minutes.

tiny model -> synthetic voices -> validate -> prepare -> LoRA training -> memorise one sample and clone it
exactly -> evaluate (report.md, report.html to listen to, and a blind A/B listening test), each step through
the same functions the individual commands call, printing where everything went and the held-out stop
health of the LoRA run.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import time
from pathlib import Path

from higgs_tune.checkpoint import resolve_checkpoint
from higgs_tune.config import LoraSettings, TrainSettings
from higgs_tune.data.manifests import read_manifest, write_manifest_jsonl
from higgs_tune.data.samples import SampleError
from higgs_tune.data.validate import validate_manifest
from higgs_tune.evaluation.evaluate import EvalSettings, evaluate
from higgs_tune.evaluation.listening import write_listening_test
from higgs_tune.files import check_output_folder, remove_outputs, write_json
from higgs_tune.inference.previews import TrainingPreviews
from higgs_tune.model.loading import load_processor
from higgs_tune.prepared.dataset import PreparedData
from higgs_tune.prepared.prepare import prepare_dataset
from higgs_tune.tiny.dataset import write_synthetic_dataset
from higgs_tune.tiny.eval_models import build_tiny_eval_models
from higgs_tune.tiny.memorise import MemorisedClone, memorise_and_clone
from higgs_tune.tiny.model import build_tiny_model
from higgs_tune.training.run import train
from higgs_tune.training.run_data import held_out_split

log = logging.getLogger(__name__)

CHROMIUM = Path("/usr/bin/chromium")  # Debian's, for the screenshots (and the browser tests)
# Marks a folder as the demo's, so a second demo may replace what the first wrote (`DEMO_OUTPUTS`) and
# nothing else.
DEMO_MARK = ".higgs-tune-demo"
DEMO_OUTPUTS = (
    "tiny-model",
    "data",
    "prepared",
    "run",
    "memorise",
    "heldout.jsonl",
    "eval",
    "ab",
    "screenshots",
    "demo_summary.json",
)


def demo_config(model: Path, data: Path, run: Path, steps: int) -> TrainSettings:
    """A short LoRA run sized for a 2-core CPU. The audio head is trained too: a random tiny model's
    frozen head would cap what the adapters alone can show in a few minutes."""
    return TrainSettings(
        model=str(model),
        data=str(data),
        output_dir=str(run),
        max_steps=steps,
        per_device_train_batch_size=4,
        learning_rate=3e-3,
        warmup_steps=min(10, steps // 10),
        logging_steps=10,
        save_steps=steps,
        eval_steps=max(1, steps // 3),
        eval_fraction=0.1,
        lora=LoraSettings(train_audio_head=True),
    )


def run_demo(out: Path, steps: int = 150, speakers: int = 8, utterances: int = 20) -> dict[str, Path]:
    """Run the demo into `out`; returns the paths it wrote.

    The default size (8 voices x 20 utterances, 150 steps) is the smallest at which the held-out loss
    falls with the training loss on the tiny model instead of only the training set being memorised.
    """
    started = time.perf_counter()
    out = Path(out)
    _claim_demo_folder(out)
    paths = {
        "model": out / "tiny-model",
        "data": out / "data",
        "prepared": out / "prepared",
        "run": out / "run",
    }
    log.info("1/7 tiny model -> %s", paths["model"])
    build_tiny_model(paths["model"], seed=0)
    asr_model, speaker_model = build_tiny_eval_models(paths["model"], seed=0)
    samples = _prepared_samples(paths, speakers, utterances)
    log.info("5/7 train (LoRA, %d steps) -> %s", steps, paths["run"])
    cfg = demo_config(paths["model"], paths["prepared"], paths["run"], steps)
    # The demo rebuilds its model and data, so an earlier demo run is stale.
    train(cfg, overwrite=True, previews=TrainingPreviews)
    checkpoint = resolve_checkpoint(paths["run"], "best")  # the best held-out loss, as `eval --adapter RUN`
    losses = [json.loads(line) for line in (paths["run"] / "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["loss"] for r in losses if "loss" in r]

    prepared = PreparedData(paths["prepared"])
    train_idx, held_out = held_out_split([r["id"] for r in prepared.records], cfg.eval_fraction, cfg.seed)
    sample = next(s for s in samples if s.id == prepared.records[train_idx[0]]["id"])
    log.info("6/7 memorise training sample %s alone (full fine-tune), then clone it greedily", sample.id)
    memorised = memorise_and_clone(paths["model"], sample, prepared, out / "memorise")
    if memorised.wav is not None:
        paths["clone"] = memorised.wav
    log.info("7/7 evaluate on the held-out samples, fine-tuned against the base model")
    heldout_manifest = write_manifest_jsonl([samples[i] for i in held_out], out / "heldout.jsonl")
    settings = EvalSettings(asr_model=str(asr_model), speaker_model=str(speaker_model))
    report = evaluate(heldout_manifest, str(paths["model"]), checkpoint, out / "eval", True, settings)
    paths["report"] = out / "eval" / "report.md"
    _listening_pages(out, paths)
    summary = {
        "command_seconds": round(command_seconds(), 1),
        "steps_seconds": round(time.perf_counter() - started, 1),
        "first_loss": train_losses[0],
        "last_loss": train_losses[-1],
        "eval_losses": [r["eval_loss"] for r in losses if "eval_loss" in r],
        "held_out_stop_health": _stop_health(losses),
        "memorised_clone": memorised.as_json(),
        "eval": report.to_dict()["summary"],
        "paths": {k: str(v) for k, v in paths.items()},
        "serve_command": serve_command(paths["model"], paths["run"]),
    }
    write_json(out / "demo_summary.json", summary)
    print(_finished(summary, paths, checkpoint, steps, memorised, out))
    return paths


def command_seconds() -> float:
    """Wall-clock seconds since this process started: what a user timing `higgs-tune demo` measures,
    Python's start-up and the imports included (a timer started inside `run_demo` leaves out seconds of
    them). Linux gives the process start and the clock on one basis (since boot, to 1/100 s); elsewhere
    psutil's start time, which is rounded to the second."""
    try:
        stat = Path("/proc/self/stat").read_text()
        started = int(stat.rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
        seconds = time.clock_gettime(time.CLOCK_BOOTTIME) - started
        if seconds >= 0:
            return seconds
    except (OSError, ValueError, IndexError, AttributeError):  # not Linux
        pass
    import psutil  # accelerate's dependency

    return time.time() - psutil.Process().create_time()


def _claim_demo_folder(out: Path) -> None:
    """Take `out` for the demo: a new or empty folder (marked as the demo's), or one an earlier demo
    marked, whose demo outputs are removed first (the demo rebuilds its model and data, so they are stale).
    A folder holding anything else is refused before any work: nothing of the user's is overwritten."""
    if (out / DEMO_MARK).is_file():
        if remove_outputs(out, DEMO_OUTPUTS):
            log.info("replacing the outputs of an earlier demo in %s", out)
        return
    check_output_folder(out, "--out")
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARK).write_text("written by higgs-tune demo\n", encoding="utf-8")


def _prepared_samples(paths: dict[str, Path], speakers: int, utterances: int) -> list:
    """Steps 2-4: synthetic voices, validated, then prepared for training; returns the manifest's samples."""
    log.info("2/7 synthetic voices -> %s", paths["data"])
    manifest = write_synthetic_dataset(paths["data"], n_speakers=speakers, utts_per_speaker=utterances)[
        "manifest_jsonl"
    ]
    log.info("3/7 validate %s", manifest)
    report = validate_manifest(manifest)
    log.info("%d samples, %d errors, %d warnings", len(report.samples), report.n_errors, report.n_warnings)
    log.info("4/7 prepare -> %s", paths["prepared"])
    samples = read_manifest(manifest)
    prepare_dataset(samples, load_processor(paths["model"]), paths["prepared"], model_id=str(paths["model"]))
    return samples


def _listening_pages(out: Path, paths: dict[str, Path]) -> None:
    """The pages to listen to, added to `paths`: `report.html` (`evaluate` wrote it), a blind A/B test of
    the same clones, and a screenshot of each."""
    paths["report_html"] = out / "eval" / "report.html"
    try:
        paths["listening_test"] = write_listening_test(out / "eval", out / "ab")
    except SampleError as e:  # a tiny random model may stop every clone at once
        log.warning("no listening test: %s", e)
    paths.update(screenshots({k: paths[k] for k in ("report_html", "listening_test") if k in paths}, out))


STOP_HEALTH_KEYS = ("eval_loss", "eval_eos_prob", "eval_early_stop_risk", "eval_accuracy")


def _stop_health(rows: list[dict]) -> dict[str, float | None]:
    """The last held-out row's stop-health figures (None for a key the trainer did not log)."""
    held_out = [r for r in rows if "eval_loss" in r]
    last = held_out[-1] if held_out else {}
    return {k: last.get(k) for k in STOP_HEALTH_KEYS}


def serve_command(model: Path, run: Path) -> str:
    """The one command that serves the demo's fine-tune (its best checkpoint, `serve`'s default), quoted
    for a POSIX shell so it can be pasted as printed."""
    return shlex.join(["higgs-tune", "serve", "--model", str(model), "--adapter", str(run)])


def _finished(
    summary: dict, paths: dict[str, Path], checkpoint: Path, steps: int, memorised: MemorisedClone, out: Path
) -> str:
    """What the demo tells its user at the end: where each result went, and what the numbers mean."""
    health = "  ".join(
        f"{k.removeprefix('eval_')} {'n/a' if v is None else f'{v:.3f}'}"
        for k, v in summary["held_out_stop_health"].items()
    )
    return (
        f"\nDemo finished: {summary['command_seconds']} s wall time for the whole command, from the start "
        "of the process (Python start-up and imports included; "
        f"{summary['steps_seconds']} s in the demo's steps).\n"
        f"  training loss  {summary['first_loss']:.3f} -> {summary['last_loss']:.3f} over {steps} steps "
        f"(metrics: {paths['run'] / 'metrics.jsonl'}, TensorBoard: {paths['run'] / 'tensorboard'})\n"
        f"  held-out loss  {' -> '.join(f'{x:.3f}' for x in summary['eval_losses'])}\n"
        f"  stop health    {health} (held-out, last evaluation of the LoRA run)\n"
        f"  checkpoint     {checkpoint} (the best held-out loss; evaluated below)\n"
        f"  {memorised.describe()}\n"
        f"                 {memorised.wav or 'no audio written'} (the correctness contract: what is trained "
        "is what is cloned)\n"
        f"  evaluation     {paths['report']} (held-out clones of a 2-layer random model are not speech; tiny "
        "random ASR and speaker models: the numbers exercise the pipeline, they do not measure speech)\n"
        f"  listen         {paths['report_html']} (open it in a browser: each sample's reference, base and "
        "fine-tuned clone, side by side)\n"
        f"  blind A/B test {paths.get('listening_test', 'not written (no clone with audio)')} (score the "
        f"exported answers with: higgs-tune listen-score {out / 'ab' / 'key.json'} ANSWERS.json)\n"
        + "".join(f"  screenshot     {paths[k]}\n" for k in paths if k.startswith("screenshot_"))
        + f"  serve          {summary['serve_command']} (then open http://127.0.0.1:8000/ to hear it)\n"
        + f"  summary        {out / 'demo_summary.json'}"
    )


def screenshots(pages: dict[str, Path], out: Path) -> dict[str, Path]:
    """A full-page screenshot of each page (name -> file) in headless Chromium, written into
    `out/screenshots/`, to see the report without a browser at hand; none, with the reason logged, where
    Chromium or playwright is not installed. Returns `screenshot_<name>` -> PNG."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        log.info("no screenshots: playwright is not installed (pip install -e '.[dev]')")
        return {}
    if not CHROMIUM.is_file():
        log.info("no screenshots: %s is not installed (apt-get install chromium)", CHROMIUM)
        return {}
    shots = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for name, path in pages.items():
            page.goto(path.resolve().as_uri())
            shots[f"screenshot_{name}"] = out / "screenshots" / f"{name}.png"
            page.screenshot(path=str(shots[f"screenshot_{name}"]), full_page=True)
        browser.close()
    return shots
