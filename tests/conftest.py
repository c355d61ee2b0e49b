"""Shared fixtures: one tiny model folder and one prepared dataset per session, and small clips on the fly.

Nothing binary is checked in: the tiny model, its codec and the synthetic voices are built offline in a
few seconds and loaded through the same `from_pretrained` path as the real checkpoint.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from higgs_tune.model.loading import load_model, load_processor
from higgs_tune.tiny.model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Higgs Audio v2 folder (seed 0) that loads like the real checkpoint; treat it as read-only."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "higgs-tiny", seed=0)


@pytest.fixture(scope="session")
def processor(tiny_model_dir: Path):
    return load_processor(tiny_model_dir)


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):
    return load_model(tiny_model_dir).eval()


@pytest.fixture(scope="session")
def tiny_model_with_text_head(tiny_model_dir: Path):
    return load_model(tiny_model_dir, use_text_head=True).eval()


@pytest.fixture(scope="session")
def sample_data_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The synthetic cloning dataset the demo uses (4 voices x 6 utterances), in every manifest format."""
    from higgs_tune.tiny.dataset import write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("sample-data") / "data")


@pytest.fixture(scope="session")
def prepared_dir(
    tmp_path_factory: pytest.TempPathFactory, sample_data_dir, processor, tiny_model_dir
) -> Path:
    """The sample data prepared (encoded once) with the tiny codec."""
    from higgs_tune.data.manifests import read_manifest
    from higgs_tune.prepared.prepare import prepare_dataset

    out = tmp_path_factory.mktemp("prepared") / "data"
    prepare_dataset(
        read_manifest(sample_data_dir["manifest_jsonl"]), processor, out, model_id=str(tiny_model_dir)
    )
    return out


def fast_tiny_eval_models(root: Path) -> tuple[Path, Path]:
    """The tiny ASR and speaker models (`tiny.eval_models`) in `root`. The tiny Whisper writes text up to its
    token limit (448): 24 tokens are as good a transcript here, and 20 times faster."""
    from transformers import GenerationConfig

    from higgs_tune.tiny.eval_models import build_tiny_eval_models

    asr, speaker = build_tiny_eval_models(root)
    whisper = GenerationConfig.from_pretrained(asr)
    whisper.max_length = 24
    whisper.save_pretrained(asr)
    return asr, speaker


@pytest.fixture(scope="session")
def eval_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir, prepared_dir, sample_data_dir) -> Path:
    """What `eval --baseline` writes (report.json, clones, report.html) for a 1-step LoRA run on 3 samples,
    Arabic and English, with 0.5 s clips so it takes seconds; the report and listening-test tests share it."""
    from higgs_tune.checkpoint import resolve_checkpoint
    from higgs_tune.evaluation.evaluate import EvalSettings, evaluate
    from higgs_tune.inference.settings import LengthLimit
    from higgs_tune.training.trainer import Trainer

    root = tmp_path_factory.mktemp("eval-dir")
    Trainer(train_config(tiny_model_dir, prepared_dir, root / "run", "max_steps=1")).run()
    asr, speaker = fast_tiny_eval_models(root / "eval-models")
    heldout = sample_data_dir["manifest_jsonl"].parent / "heldout_eval_dir.jsonl"
    lines = sample_data_dir["manifest_jsonl"].read_text(encoding="utf-8").splitlines()[:3]
    heldout.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    short = LengthLimit(min_seconds=0.5, max_seconds=0.5)
    settings = EvalSettings(asr_model=str(asr), speaker_model=str(speaker), language="ar", limit=short)
    checkpoint = resolve_checkpoint(root / "run", "best")  # as `eval --adapter RUN` does
    evaluate(heldout, str(tiny_model_dir), checkpoint, root / "eval", True, settings)
    return root / "eval"


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium driven by playwright; skipped, saying why, where either is not installed."""
    from higgs_tune.tiny.demo import CHROMIUM  # Debian's: playwright never downloads a browser here

    if not CHROMIUM.is_file():
        pytest.skip(f"browser tests need {CHROMIUM}: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (.[dev])")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM))
        yield chromium
        chromium.close()


def open_page(browser, path: Path):
    """A new page at `path` (file://) and the list its console errors, page errors and failed requests
    are collected into; downloads are accepted."""
    page = browser.new_context(accept_downloads=True).new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    # A reload aborts the media requests still in flight (net::ERR_ABORTED): not a missing file.
    page.on(
        "requestfailed",
        lambda r: (
            "ERR_ABORTED" not in (r.failure or "") and errors.append(f"request failed: {r.url} ({r.failure})")
        ),
    )
    page.goto(path.resolve().as_uri())
    return page, errors


# Loads every <audio> on the page (they are preload="none") and reports how each went.
AUDIO_STATES_JS = """async () => Promise.all([...document.querySelectorAll("audio")].map((a) =>
  new Promise((resolve) => {
    const done = (how) => resolve({src: a.getAttribute("src"), how, ready: a.readyState,
                                   duration: a.duration, error: a.error && a.error.code});
    a.addEventListener("loadedmetadata", () => done("loaded"), {once: true});
    a.addEventListener("error", () => done("error"), {once: true});
    setTimeout(() => done("timeout"), 10000);
    a.preload = "metadata";
    a.load();
  })))"""


def tone(seconds: float, sr: int = 24_000, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise and a syllable-like envelope, at a sane level (about -20 dBFS)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    f0 = 110 + 40 * (seed % 7)
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2) + 0.01 * rng.standard_normal(t.size)
    x = 0.3 * x / np.abs(x).max()
    return np.stack([x] * channels, axis=1) if channels > 1 else x


WavFactory = Callable[..., Path]


@pytest.fixture
def make_wav(tmp_path: Path) -> WavFactory:
    """make_wav("clips/a.wav", seconds=1.0, sr=24000, channels=1, subtype="PCM_16", data=None) -> path."""

    def make(
        name: str,
        seconds: float = 1.0,
        sr: int = 24_000,
        channels: int = 1,
        subtype: str = "PCM_16",
        data: np.ndarray | None = None,
        seed: int = 0,
    ) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        audio = tone(seconds, sr, channels, seed) if data is None else data
        sf.write(str(path), audio, sr, subtype=subtype)
        return path

    return make


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def train_config(tiny_model_dir: Path, prepared_dir: Path, out: Path, *overrides: str):
    """A short, deterministic training config on the tiny model; `overrides` are `key=value` on top."""
    from higgs_tune.config import TrainSettings
    from higgs_tune.config_files import load_config

    base = [
        f"model={tiny_model_dir}",
        f"data={prepared_dir}",
        f"output_dir={out}",
        "warmup_steps=0",
        "logging_steps=1",
        "per_device_train_batch_size=2",
        "lora.dropout=0",
    ]
    return load_config(TrainSettings, None, [*base, *overrides])


AR = "مرحبا بكم في البيت"  # 15 letters: about 15 letters/s over the 1 s test clips


def entry(id, ref="clips/ref.wav", audio="clips/tgt.wav", **fields):
    record = {"id": id, "ref_audio": ref, "ref_text": "نص المرجع", "text": AR, "audio": audio}
    record.update(fields)
    return {k: v for k, v in record.items() if v is not None}


@pytest.fixture
def malformed_corpus(tmp_path: Path, make_wav: WavFactory) -> tuple[Path, dict[str | None, set[str]]]:
    """A manifest with one sample per kind of problem (and a few good ones), and what `validate` must
    find: sample id (or `m:LINE` for an entry without one) -> problem codes. `validate` and `prepare`
    both run on it."""
    make_wav("clips/ref.wav", seed=1)
    make_wav("clips/tgt.wav", seed=2)
    for i in range(3):
        make_wav(f"clips/t{i}.wav", seed=3 + i)
    full = make_wav("clips/full.wav", seconds=1.0, seed=6).read_bytes()
    (tmp_path / "clips/cut.wav").write_bytes(full[: len(full) // 2])
    make_wav("clips/empty.wav", data=np.zeros(0, dtype=np.float32))
    nan = np.zeros(24_000, dtype=np.float32)
    nan[100] = np.nan
    make_wav("clips/nan.wav", data=nan, subtype="FLOAT")
    make_wav("clips/long.wav", seconds=45.0, sr=8_000)  # absurd duration (and not 24 kHz)
    make_wav("clips/short.wav", seconds=0.2)
    (tmp_path / "clips/garbage.wav").write_text("RIFF? no.\n")
    make_wav("clips/silent.wav", data=np.zeros(24_000, dtype=np.float32))
    square = np.where(np.arange(24_000) % 60 < 30, 1.0, -1.0).astype(np.float32)
    make_wav("clips/clipped.wav", data=square, subtype="FLOAT")
    make_wav("clips/stereo.wav", channels=2, seed=7)
    os.symlink(tmp_path / "clips/ref.wav", tmp_path / "clips/link_to_ref.wav")
    (tmp_path / "clips/tgt_copy.wav").write_bytes((tmp_path / "clips/tgt.wav").read_bytes())
    lines = [
        json.dumps(entry("ok")),
        '{"id": "broken", "ref_audio": ',  # broken JSON: named by its default id m:1
        json.dumps(entry("no_ref_text", ref_text=None)),
        json.dumps(entry("int_text", text=42)),
        json.dumps(entry("missing_file", audio="clips/absent.wav")),
        json.dumps(entry("truncated", audio="clips/cut.wav")),
        json.dumps(entry("zero_len", audio="clips/empty.wav")),
        json.dumps(entry("nan", audio="clips/nan.wav")),
        json.dumps(entry("empty_text", text=" \t ")),
        json.dumps(entry("absurd", audio="clips/long.wav")),
        json.dumps(entry("tiny", audio="clips/short.wav")),
        json.dumps(entry("self", ref="clips/tgt.wav")),
        json.dumps(entry("via_link", audio="clips/link_to_ref.wav")),
        json.dumps(entry("garbage", audio="clips/garbage.wav")),
        json.dumps(entry("remote", audio="https://example.org/a.wav")),
        json.dumps(entry("ok", audio="clips/t0.wav")),  # duplicate id
        json.dumps(["not", "an", "object"]),  # m:16
        json.dumps(entry("folder", audio="clips")),
        json.dumps(entry("silent", audio="clips/silent.wav")),
        json.dumps(entry("clipped", audio="clips/clipped.wav")),
        json.dumps(entry("stereo", audio="clips/stereo.wav")),
        json.dumps(
            entry(
                "too_fast",
                audio="clips/t1.wav",
                text="هذه جملة طويلة جدا لا يمكن أن تقال في ثانية واحدة أبدا",
            )
        ),
        json.dumps(entry("same_pair")),  # same ref and target as "ok"
        json.dumps(entry("english", audio="clips/t2.wav", text="This text is not Arabic.")),
        json.dumps(entry("bad_speaker", speaker={"name": "x"})),
        json.dumps(entry("copy", ref="clips/tgt_copy.wav")),  # the target's bytes under another name
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = {
        "m:1": {"invalid_json"},
        "no_ref_text": {"missing_field"},
        "int_text": {"wrong_type"},
        "missing_file": {"audio_missing"},
        "truncated": {"audio_truncated"},
        "zero_len": {"audio_empty"},
        "nan": {"audio_nonfinite"},
        "empty_text": {"empty_text"},
        "absurd": {"too_long", "sample_rate"},
        "tiny": {"too_short"},
        "self": {"same_ref_and_target"},
        "via_link": {"same_ref_and_target"},
        "copy": {"same_ref_and_target"},
        "garbage": {"audio_unreadable"},
        "remote": {"bad_path"},
        "ok": {"duplicate_id"},  # reported on the later entry; the first "ok" is kept
        "m:16": {"wrong_type"},
        "folder": {"audio_missing"},
        "silent": {"near_silent"},
        "clipped": {"clipping"},
        "stereo": {"multi_channel"},
        "too_fast": {"chars_per_second"},
        "same_pair": {"duplicate_pair"},
        "english": {"no_arabic_script"},
        "bad_speaker": {"wrong_type"},
    }
    return path, expected


def synthetic_prefs(prepared_dir: Path, model: Path, out: Path, pairs: int = 6, swap: bool = False) -> Path:
    """A preference folder as `prefs` writes it, without sampling: for each of the first `pairs` prepared
    samples the chosen clip is its own target clip and the rejected one the next sample's target clip
    (`swap` reverses them). DPO on it must learn to prefer the chosen clips."""
    from dataclasses import asdict

    import numpy as np

    from higgs_tune.config import PromptSettings
    from higgs_tune.files import write_json, write_jsonl
    from higgs_tune.prepared.dataset import PreparedData

    data = PreparedData(prepared_dir)
    (out / "codes").mkdir(parents=True)
    write_json(out / "settings.json", {"model": str(model), "adapter": None})
    write_json(out / "prompt.json", asdict(PromptSettings()))
    lines = []
    for i in range(pairs):
        s, other = data[i], data[(i + 1) % pairs]
        np.save(out / "codes" / f"{i}-ref.npy", s.ref_codes)
        good, bad = (s.target_codes, other.target_codes)[:: -1 if swap else 1]
        sides = {}
        for name, codes in (("good", good), ("bad", bad)):
            np.save(out / "codes" / f"{i}-{name}.npy", codes)
            sides[name] = {"codes": f"codes/{i}-{name}.npy", "frames": codes.shape[1], "stopped_by_eos": True}
        common = {"id": s.id, "ref_text": s.ref_text, "text": s.text, "scene": s.scene}
        lines.append(
            {**common, "ref_codes": f"codes/{i}-ref.npy", "chosen": sides["good"], "rejected": sides["bad"]}
        )
    write_jsonl(out / "prefs.jsonl", lines)
    return out


@pytest.fixture
def run_cli(monkeypatch, capsys, caplog):
    """Run `higgs-tune ARGS` in this process (without its logging set-up, which would outlive the test):
    returns the exit status, stdout, and stderr with the log."""
    import higgs_tune.cli

    monkeypatch.setattr(higgs_tune.cli, "setup_logging", lambda: None)

    def run(*args) -> tuple[int, str, str]:
        caplog.clear()
        monkeypatch.setattr(sys, "argv", ["higgs-tune", *map(str, args)])
        with pytest.raises(SystemExit) as exit_:
            higgs_tune.cli.main()
        out, err = capsys.readouterr()
        return exit_.value.code, out, err + caplog.text

    return run
