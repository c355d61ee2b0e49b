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
#   PYTHON=.venv/bin/python bash bench/gpu.sh --dry-run   # on CPU: the script and the bench's imports
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

if $dry_run; then
    "$python" -c "import sys; sys.path.insert(0, 'bench')
import full_size, train_paths, measure, dual_ffn, gpu_extras" \
        && echo "gpu.sh dry run: bench imports fine with $("$python" -c 'import torch; print(torch.__version__)')"
    exit 0
fi

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr ' ' '-' | tr -cd 'A-Za-z0-9_.-')
out_dir="${OUT:-bench/results}"
mkdir -p "$out_dir"
table="$out_dir/$(date -u +%Y-%m-%d)-${gpu}-train-full-size.txt"
work=$(mktemp -d /tmp/higgs-gpu-bench.XXXXXX)
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    date -u
    "$python" -c "import torch, transformers, peft, accelerate; print('torch', torch.__version__, \
'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__)"
    "$python" -c "import bitsandbytes; print('bitsandbytes', bitsandbytes.__version__)" \
        || echo "no bitsandbytes: the QLoRA and 8-bit AdamW rows will fail"
    timeout 270 "$python" bench/train.py --full-size 2>&1 | grep -v Warning \
        || echo "training bench failed or timed out"
    timeout 100 "$python" bench/gpu_extras.py rtf --full-size --work "$work" 2>&1 \
        | grep -v -e Warning -e "did not emit" || echo "cloning bench failed or timed out"
    timeout 110 "$python" bench/gpu_extras.py fsdp --work "$work" >"$work/fsdp.log" 2>&1 \
        || echo "FSDP check failed or timed out; the end of its log:"
    tail -n 4 "$work/fsdp.log"
} | tee "$table"
echo "table written to $table"
