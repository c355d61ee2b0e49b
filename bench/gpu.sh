#!/usr/bin/env bash
# One command that measures a lent GPU (about 7 minutes on one H100/H200), its table written to
# bench/results/ (or $OUT when set, as on the device machine) with the GPU's name and the date:
#   1. training steps of the full-size architecture at sequence 2048 (bench/full_size.py): LoRA bf16 with
#      and without gradient checkpointing, each with transformers' DualFFN and the sync-free one; QLoRA
#      nf4; full fine-tuning with 8-bit AdamW: tokens/s, MFU (with the peak FLOP/s assumed), peak memory,
#      host syncs per step;
#   2. the real-time factor of batched cloning at batch 1 and 8 (bench/gpu_extras.py rtf);
#   3. a few FSDP steps of the tiny model, one process, saved, resumed, losses compared (gpu_extras.py fsdp).
#
#   bash bench/gpu.sh [WHEEL_DIR]        # default WHEEL_DIR: .whl
#   PYTHON=.venv/bin/python bash bench/gpu.sh --dry-run   # on CPU: every import, every row set up and
#                                                         # run one step on the tiny model (tests/test_bench.py)
#
# GPU machines without a package registry run this on their own torch. What is missing there or too
# old (transformers, peft, bitsandbytes, soundfile, soxr, cffi; see "Measuring on a GPU" in docs/benchmarks.md)
# comes as wheels in WHEEL_DIR and is installed into /tmp/site, which goes first on PYTHONPATH.
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=false
wheels=.whl
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry_run=true ;;
        *) wheels="$arg" ;;
    esac
done
python="${PYTHON:-python3}"

site=/tmp/site
if ! $dry_run && compgen -G "$wheels/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$site" "$wheels"/*.whl
    export PYTHONPATH="$site:$PWD/src"
else
    export PYTHONPATH="$PWD/src"
fi
export PYTHONUNBUFFERED=1

work=$(mktemp -d /tmp/higgs-gpu-bench.XXXXXX)
if $dry_run; then
    # Every import and every row's set-up, with the tiny model on CPU, one step each (seconds, not minutes).
    # The torch_compile row runs eagerly here (inductor would compile for minutes on 2 cores): its set-up
    # is checked; compiled and eager losses are tests/training/test_torch_compile.py's to compare.
    export TORCHDYNAMO_DISABLE=1
    set -x
    "$python" bench/gpu_rows.py rows --tiny
    "$python" bench/gpu_rows.py profile --tiny --out "$work"
    "$python" bench/gpu_stages.py --tiny --work "$work"
    "$python" bench/gpu_extras.py rtf --work "$work" --frames 4 --batch-sizes 1 2
    set +x
    echo "gpu.sh dry run: every row set up and ran one step with $("$python" -c 'import torch; print("torch", torch.__version__)')"
    exit 0
fi

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '-' | tr -cd 'A-Za-z0-9_.-')
out_dir="${OUT:-bench/results}"
mkdir -p "$out_dir"
table="$out_dir/$(date -u +%Y-%m-%d)-${gpu}-gpu.txt"
# Each part under its own time limit (about 8.5 minutes together), each row printed as it is measured.
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    date -u
    "$python" -c "import torch, transformers, peft, accelerate; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__)"
    "$python" -c "import bitsandbytes; print('bitsandbytes', bitsandbytes.__version__)" \
        || echo "no bitsandbytes: the QLoRA and 8-bit AdamW rows will fail"
    timeout 300 "$python" bench/gpu_rows.py rows 2>&1 | grep -v Warning || echo "training rows failed or timed out"
    timeout 60 "$python" bench/gpu_rows.py profile --out "$out_dir" 2>&1 | grep -v Warning \
        || echo "profile failed or timed out"
    timeout 60 "$python" bench/gpu_stages.py --work "$work" 2>&1 | grep -v Warning \
        || echo "codec / ASR bench failed or timed out"
    timeout 70 "$python" bench/gpu_extras.py rtf --full-size --work "$work" --batch-sizes 1 8 32 2>&1 \
        | grep -v -e Warning -e "did not emit" || echo "cloning bench failed or timed out"
} | tee "$table"
echo "table written to $table"
