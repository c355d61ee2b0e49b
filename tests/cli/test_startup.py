"""Start-up: `higgs-tune --help` and `higgs-tune validate` import none of the heavy libraries.

Importing transformers alone took about 0.6 s of the 0.95 s `--help` took; torch, peft, accelerate,
datasets and matplotlib are as slow. The commands that need them import them in their own functions
(tests/test_layers.py counts those imports as dependencies too).
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "peft", "accelerate", "datasets", "matplotlib", "torchaudio", "rich")
# What `python -m higgs_tune ARGS` imported, printed after it exits, as the last line.
PROBE = """
import json, runpy, sys
sys.argv = ["higgs-tune", *sys.argv[1:]]
try:
    runpy.run_module("higgs_tune", run_name="__main__")
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "modules": sorted(m for m in sys.modules if "." not in m)}))
"""


def imported_by(*args: str) -> tuple[int, set[str]]:
    """The exit status of `python -m higgs_tune ARGS` and the top-level modules it imported."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True)
    result = json.loads(proc.stdout.splitlines()[-1])
    return result["code"], set(result["modules"])


def test_help_imports_no_heavy_library():
    code, modules = imported_by("--help")
    assert code == 0
    assert modules.isdisjoint(HEAVY + ("numpy", "soundfile")), modules.intersection(HEAVY + ("numpy",))
    code, modules = imported_by("train", "--help")
    assert code == 0
    assert modules.isdisjoint(HEAVY), modules.intersection(HEAVY)


def test_validate_imports_no_heavy_library(sample_data_dir):
    code, modules = imported_by("validate", str(sample_data_dir["manifest_jsonl"]))
    assert code == 0
    assert modules.isdisjoint(HEAVY), modules.intersection(HEAVY)


def test_transformers_is_quiet_when_imported_after_the_logging_set_up():
    """`logs.setup_logging` no longer imports transformers: it sets the variables transformers reads when
    it is imported, with the same effect (errors only, no progress bars)."""
    probe = (
        "from higgs_tune.logs import setup_logging; setup_logging()\n"
        "from transformers.utils import logging as hf\n"
        "print(hf.get_verbosity(), hf.is_progress_bar_enabled())"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["40", "False"]  # logging.ERROR
