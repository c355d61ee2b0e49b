"""The data path at scale: what a run pays before its first step, at 10k, 100k and 1M cloning pairs.

    PYTHONPATH=src python bench/scale.py --pairs 10000 100000 [1000000] [--before REV]

One run builds the tiny model and 1,000 distinct synthetic clips (so the codec's work is the same at every
size and what grows is the data path alone), then for each N a JSON Lines manifest of N pairs drawn from
those clips, and measures, each command in its own process (peak RSS is that process's own, from
`os.wait4`):

* `validate` of the manifest: wall time and peak RSS;
* `prepare` of the manifest besides encoding: its wall time less the encoding time it logs;
* `train` to its first step (`max_steps=1`; stopped once its log shows the step): wall time and peak RSS.

With `--before REV` (default: the commit before issue 27's data-path work) the same commands also run on
that revision's sources (`git archive REV src`), on the same data in the same run, and the table gives
before, after and their ratio. Ratios from one run on one machine are what to compare; the absolute figures
depend on the machine (the table in docs/scale.md was measured on 2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BEFORE = "5c0deb1"  # the main branch before the data-path fixes of issue 27
ENCODED = re.compile(r"encoded \d+ clips \([\d.]+ h of audio\) in ([\d.]+) s")


def build_clips(work: Path, n_clips: int, seed: int = 0) -> tuple[Path, list[dict]]:
    """The tiny model and `n_clips` short synthetic clips with texts; returns (model folder, clips)."""
    from higgs_tune.data.audio import write_wav
    from higgs_tune.tiny.corpus import ENGLISH
    from higgs_tune.tiny.model import build_tiny_model
    from higgs_tune.tiny.synth import synth_speech

    rng = random.Random(seed)
    model = build_tiny_model(work / "model", seed=0)
    words = " ".join(ENGLISH).split()
    clips = []
    for k in range(n_clips):
        seconds = rng.uniform(0.6, 1.0)
        voice = {"pitch_hz": 100.0 + 25 * (k % 5), "formant_scale": 1.0 + 0.05 * (k % 4)}
        path = write_wav(work / "clips" / f"c{k:04d}.wav", synth_speech(seconds, seed=seed + k, **voice))
        start = rng.randrange(len(words))
        text = " ".join((words * 2)[start : start + max(3, round(2.5 * seconds))])
        clips.append({"path": f"clips/{path.name}", "text": text, "speaker": f"spk{k % 50}"})
    return model, clips


def write_manifest(path: Path, clips: list[dict], n_pairs: int, seed: int = 0) -> Path:
    """`n_pairs` flat entries, each a reference and another clip of the same speaker as target."""
    rng = random.Random(seed)
    by_speaker: dict[str, list[dict]] = {}
    for c in clips:
        by_speaker.setdefault(c["speaker"], []).append(c)
    groups = list(by_speaker.values())
    with path.open("w") as f:
        for i in range(n_pairs):
            ref, target = rng.sample(groups[i % len(groups)], 2)
            entry = {
                "id": f"p{i:07d}",
                "ref_audio": ref["path"],
                "ref_text": ref["text"],
                "audio": target["path"],
                "text": target["text"],
                "speaker": target["speaker"],
            }
            f.write(json.dumps(entry) + "\n")
    return path


FIRST_STEP = re.compile(r"train: (100%\|.*1/1|1/1 in )")  # the old code's tqdm bar, or a progress line


def measure(cmd: list[str], src: Path, log: Path, until: re.Pattern | None = None) -> dict:
    """Run one `higgs-tune` command on the sources in `src`; wall seconds, peak RSS (GB), its log. With
    `until`, the command is stopped as soon as its log matches (seconds up to that point)."""
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONUNBUFFERED": "1"}
    if until is not None:  # a progress line per step, so that the first step shows at once
        env["HIGGS_TUNE_PROGRESS_EVERY"] = "0"
    env.pop("RANK", None)
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "higgs_tune", *cmd], env=env, stdout=out, stderr=out)
        while until is not None and proc.poll() is None and not until.search(log.read_text(errors="replace")):
            time.sleep(0.2)
        seconds = time.perf_counter() - started
        if until is not None and proc.poll() is None:
            proc.terminate()
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = seconds if until is not None else time.perf_counter() - started
    text = log.read_text(errors="replace")
    if (
        until is not None
        and not until.search(text)
        or until is None
        and os.waitstatus_to_exitcode(status) > 1
    ):
        raise SystemExit(f"{' '.join(cmd)} failed, see {log}:\n{text[-3000:]}")
    return {"s": seconds, "rss_gb": usage.ru_maxrss / 2**20, "log": text}


def run_sizes(work: Path, model: Path, manifest: Path, src: Path, tag: str) -> dict:
    """validate, prepare and train on one manifest with the sources in `src`."""
    out = work / f"{manifest.stem}-{tag}"
    out.mkdir()
    validate = measure(["validate", str(manifest)], src, out / "validate.log")
    prepared = out / "prepared"
    prep = measure(
        ["prepare", str(manifest), "--model", str(model), "--out", str(prepared)], src, out / "p.log"
    )
    encoding = sum(float(s) for s in ENCODED.findall(prep["log"]))
    overrides = [
        "max_steps=1",
        "warmup_steps=0",
        "eval_steps=1000",
        "save_steps=1000",
        "logging_steps=1",
        "report_to=[]",
    ]
    train = measure(
        ["train", "--model", str(model), "--data", str(prepared), "--out", str(out / "run"), *overrides],
        src,
        out / "train.log",
        until=FIRST_STEP,
    )
    return {
        "train_s": train["s"],
        "train_rss": train["rss_gb"],
        "validate_s": validate["s"],
        "validate_rss": validate["rss_gb"],
        "prepare_s": prep["s"] - encoding,
    }


ROWS = [
    ("`train` to its first step", "train_s", "s"),
    ("`train` peak RSS", "train_rss", "GB"),
    ("`validate`", "validate_s", "s"),
    ("`validate` peak RSS", "validate_rss", "GB"),
    ("`prepare` besides encoding", "prepare_s", "s"),
]


def table(results: dict[int, dict[str, dict]]) -> str:
    """Markdown: one row per measure, one column per size, each cell "before -> after (ratio)"."""
    sizes = sorted(results)
    lines = [
        "| step | " + " | ".join(f"{n:,} pairs" for n in sizes) + " |",
        "|---" * (len(sizes) + 1) + "|",
    ]
    for name, key, unit in ROWS:
        cells = []
        for n in sizes:
            after = results[n]["after"][key]
            before = results[n].get("before", {}).get(key)
            cells.append(
                f"{after:.2f} {unit}"
                if before is None
                else f"{before:.2f} -> {after:.2f} {unit} ({before / max(after, 1e-9):.1f}x)"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def old_sources(work: Path, rev: str) -> Path:
    """`rev`'s src/ unpacked under `work`."""
    archive = work / "before.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), rev, "src"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(work / "before", filter="data")
    return work / "before" / "src"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--clips", type=int, default=1000)
    p.add_argument("--before", default=BEFORE, help="revision to compare with; '' for after only")
    p.add_argument("--work", type=Path, help="keep the data here (default: a temporary folder)")
    p.add_argument("--build-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.build_only:
        _, clips = build_clips(args.work, args.clips)
        (args.work / "clips.json").write_text(json.dumps(clips))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        # Built in a process of its own: a child forked from a process holding torch would report that
        # process's memory as its own peak RSS.
        subprocess.run(
            [sys.executable, __file__, "--build-only", "--clips", str(args.clips), "--work", work], check=True
        )
        model, clips = work / "model", json.loads((work / "clips.json").read_text())
        variants = {"after": REPO / "src"}
        if args.before:
            variants = {"before": old_sources(work, args.before), **variants}
        results: dict[int, dict[str, dict]] = {}
        for n in args.pairs:
            manifest = write_manifest(work / f"pairs{n}.jsonl", clips, n)
            results[n] = {}
            for tag, src in variants.items():
                results[n][tag] = run_sizes(work, model, manifest, src, tag)
                print(f"{n} pairs, {tag}: {json.dumps(results[n][tag])}", flush=True)
        print(f"\ntiny model, {args.clips} distinct clips, N pairs; before = {args.before or '-'}\n")
        print(table(results))


if __name__ == "__main__":
    main()
