"""The training benchmark: its naive baseline, its sync counter, its FLOPs formula and its full-size path."""

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from higgs_tune.model.loading import load_processor
from higgs_tune.tiny.model import build_tiny_tokenizer, tiny_lm_config

BENCH = Path(__file__).parents[1] / "bench"


@pytest.fixture(scope="module")
def bench():
    """The bench's modules, imported as `python bench/train.py` imports them (bench/ first on the path)."""
    sys.path.insert(0, str(BENCH))
    try:
        modules = (
            "train",
            "measure",
            "full_size",
            "train_paths",
            "dual_ffn",
            "gpu_extras",
            "labels_side_by_side",
        )
        yield SimpleNamespace(**{name: importlib.import_module(name) for name in modules})
    finally:
        sys.path.remove(str(BENCH))


def test_sync_counter_sees_boolean_mask_indexing(bench):
    x, mask = torch.randn(6, 3), torch.tensor([True, False, True, True, False, False])
    counter = bench.measure.SyncCounter()
    with counter:
        y = x[mask] * 2  # syncs on a GPU: the number of selected rows
        x[~mask] += 1  # a read and a write through the mask: two
        x[torch.tensor([0, 2])] += 1  # integer indices: no sync
        _ = y.sum().item()
    assert counter.by_op == {"index": 2, "index_put_": 1, "_local_scalar_dense": 1}


def test_full_size_flops_formula(bench):
    full_size = bench.full_size
    config = full_size.full_size_config()
    assert (config.num_hidden_layers, config.hidden_size, config.codebook_size) == (28, 3072, 1026)
    per_layer = 3072 * 3072 * 2 + 2 * 3072 * 1024 + 3 * 3072 * 8192  # q, o; k, v; one MLP
    head = 3072 * 8 * 1026 * 0.5
    attention = 12 * 28 * 2048 * 3072
    n = 28 * per_layer + head
    assert full_size.model_flops_per_token(config, 2048, 0.5, False, 0) == pytest.approx(6 * n + attention)
    assert full_size.model_flops_per_token(config, 2048, 0.5, True, 10) == pytest.approx(
        4 * n + 60 + attention
    )
    assert full_size.peak_tflops("NVIDIA H100 80GB HBM3", None) == 989.0
    assert full_size.peak_tflops("NVIDIA H100 PCIe", None) == 756.0
    assert (
        full_size.peak_tflops("Some GPU", 123.0) == 123.0 and full_size.peak_tflops("Some GPU", None) is None
    )


def test_full_size_path_runs_on_a_small_config(bench, capsys):
    """The --full-size code (model build; LoRA with both DualFFN layers, with and without checkpointing;
    QLoRA; full with 8-bit AdamW; MFU), run on CPU with the tiny architecture; the real one needs a GPU."""
    args = bench.train.parse_args(["--full-size", "--seq-len", "160", "--steps", "1", "--warmup-steps", "0"])
    args.peak_tflops = 1.0
    rows = bench.full_size.run_full_size(
        args, config=tiny_lm_config(build_tiny_tokenizer()), device=torch.device("cpu")
    )
    assert [(r["mode"], r["checkpointing"], r["layer"]) for r in rows] == [
        ("lora", False, "stock"),
        ("lora", False, "fast"),
        ("lora", True, "stock"),
        ("lora", True, "fast"),
        ("qlora", True, "fast"),
        ("full", True, "fast"),
    ]
    assert all(r["tokens_per_s"] > 0 and r["mfu"] > 0 and r["sync_ops"] > 0 for r in rows)
    assert "MFU" in capsys.readouterr().out


def test_sync_free_layer_makes_a_handful_of_syncs_per_micro_batch(bench, capsys):
    """Stock: 17-18 syncing ops per layer per forward + backward; sync-free: the route, the model's one
    boolean index of its audio embeddings and one scalar read, whatever the number of layers."""
    args = bench.train.parse_args(["--dual-ffn", "--seq-len", "160", "--steps", "1", "--warmup-steps", "0"])
    config = tiny_lm_config(build_tiny_tokenizer())
    rows = bench.dual_ffn.run_dual_ffn(args, config=config, device=torch.device("cpu"))
    assert rows["stock"]["sync_ops"] >= 17 * config.num_hidden_layers
    assert rows["fast"]["sync_ops"] <= 3
    assert rows["fast"]["tokens_per_s"] > 0 and "sync-free" in capsys.readouterr().out


def test_naive_baseline_builds_the_processors_batch(bench, tiny_model_dir, sample_data_dir, tiny_model):
    processor = load_processor(tiny_model_dir)
    clips = sorted(sample_data_dir["clips"].glob("*.wav"))[:3]
    spec = {
        "clips": [{"path": str(p), "text": "some words here", "seconds": 1.0} for p in clips],
        "samples": [{"id": "a", "ref": 0, "target": 1}, {"id": "b", "ref": 2, "target": 0}],
    }
    items = [bench.train_paths.NaiveDataset(spec, processor, [0, 1])[i] for i in range(2)]
    assert all(int((x["audio_labels"] != -100).sum()) > 0 for x in items)
    batch = bench.train_paths.naive_collate(
        items, processor.tokenizer.pad_token_id, processor.audio_stream_eos_id
    )
    longest = max(int(x["input_ids"].shape[0]) for x in items)
    assert batch["input_ids"].shape == (2, longest) and batch["audio_seconds"] == 4.0
    inputs = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
    out = tiny_model(**inputs)
    assert torch.isfinite(out.loss) and out.logits.shape[:2] == (2, longest)  # logits at every position


def test_cloning_speed_on_the_tiny_model(bench, tiny_model_dir, prepared_dir, tmp_path, capsys):
    """gpu.sh's cloning real-time factor, through generate_codes, at two batch sizes (CPU, tiny model)."""
    (tmp_path / "tiny-model").symlink_to(tiny_model_dir)
    (tmp_path / "tiny-prepared").symlink_to(prepared_dir)
    args = SimpleNamespace(work=str(tmp_path), full_size=False, frames=4, batch_sizes=[1, 2])
    rows = bench.gpu_extras.run_rtf(args)
    assert [r["batch"] for r in rows] == [1, 2]
    assert all(0 < r["audio_s"] <= r["batch"] * 4 / 25 and r["rtf"] > 0 for r in rows)
    assert "audio s / wall s" in capsys.readouterr().out


def test_labels_side_by_side_quick_mode(bench, tmp_path, capsys):
    """`bench/labels_side_by_side.py --steps 1`: the table's rows and our side's labels, the target's codes
    and each codebook's stream EOS, nothing of the reference or the text. That enough steps memorise the
    sample and stop is `tests/inference/test_generate.py`'s memorise test; the transformers side may change
    with a release, so it is reported, never asserted."""
    import transformers

    result = bench.labels_side_by_side.main(["--steps", "1", "--work", str(tmp_path / "work")])
    labels, clone = result["rows"]["ours"]
    num_codebooks = 8
    assert (labels.stream_eos, labels.reference_codes, labels.text_tokens) == (num_codebooks, 0, 0)
    assert labels.audio_codes == num_codebooks * (clone.target_frames + 1)  # the codes and the stop
    assert clone.frames <= clone.frame_limit
    out = capsys.readouterr().out
    assert f"transformers {transformers.__version__}" in out and "1 steps at lr 0.003" in out
    ours = {
        "labelled audio codes (frame x codebook)": str(labels.audio_codes),
        "  of which stream EOS": str(num_codebooks),
        "  of which the reference clip's": "0",
        "labelled text tokens (need a text head)": "0",
        f"greedy clone frames (target {clone.target_frames})": str(clone.frames),
        "  stopped by": "stream EOS" if clone.stopped_by_eos else f"none: cut at {clone.frame_limit}",
        "  leading frames equal to the target's": str(clone.matching_frames),
        "  codes = the target exactly": "yes" if clone.identical else "no",
    }
    table = {cells[0]: cells[1:] for cells in (re.split(" {3,}", line) for line in out.splitlines())}
    for row, value in ours.items():
        assert len(table[row]) == 2 and table[row][1] == value, (row, table.get(row))  # [transformers, ours]


def test_gpu_sh_dry_run_sets_up_every_row_on_cpu(tmp_path):
    """`bash bench/gpu.sh --dry-run`: every row of the GPU run (training at each token budget, QLoRA, full
    with 8-bit AdamW, torch_compile, flash-attn or its skip), the profile, codec and ASR rates and cloning's
    real-time factor, set up and run for one step on the tiny model on CPU."""
    env = dict(os.environ, PYTHON=sys.executable, TMPDIR=str(tmp_path))
    done = subprocess.run(
        ["bash", str(BENCH / "gpu.sh"), "--dry-run"], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    rows = re.findall(r"^(lora|qlora|full) +(\d+) ", out, flags=re.M)
    assert [int(n) for _, n in rows] == [
        2048,
        2048,
        8192,
        16384,
        16384,
        16384,
        32768,
        32768,
        4096,
        2048,
        16384,
        16384,
    ]
    assert "out of" not in out and "error" not in out.lower()
    assert "GPU idle" in out and "audio hours per GPU hour" in out and "audio s / wall s" in out
    assert "gpu.sh dry run: every row set up" in out


def test_serve_bench_prints_every_row_of_its_table():
    """bench/serve.py with tiny sizes (two servers, about a second of load per phase): the table's rows."""
    proc = subprocess.run(
        [sys.executable, str(BENCH / "serve.py"), "--clients", "2", "--seconds", "1", "--max-queue", "1",
         "--memory-requests", "4", "--max-clip-seconds", "0.4"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {line.split(" | ")[0].lstrip("| ") for line in proc.stdout.splitlines() if line.startswith("| ")}
    for row in ("requests/s", "audio s per wall s", "latency p50 s", "latency p95 s", "errors by status",
                "time to first chunk p50 / p95 s (stream)", "peak RSS MiB (server)",
                "batched / one-at-a-time throughput", "statuses at 2 clients (2x --max-queue)",
                "RSS MiB before / after 4 requests"):  # fmt: skip
        assert row in rows, (row, proc.stdout)
