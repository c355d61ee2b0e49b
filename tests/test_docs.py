"""The documentation a new user meets: the README's first screen and the site in docs/.

The README is a first screen (what this is, the two commands, the CPU-only install) and the reference is
a mkdocs site; `mkdocs build --strict` fails on a broken link or anchor, so building it here keeps every
cross-reference of the moved sections true. `make test` and `make demo` are the README's two commands;
the Makefile is checked with `make -n` (it prints what it would run), so no environment is installed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FIRST_SCREEN = 60  # lines: what a reader sees before scrolling far
INCLUDE = re.compile(r'^--8<-- "README\.md:(\w+)"$', re.M)


def first_screen() -> str:
    return "\n".join(README.read_text(encoding="utf-8").splitlines()[:FIRST_SCREEN])


def test_the_readme_first_screen_gives_the_two_commands_and_the_cpu_only_install():
    screen = first_screen()
    assert "make test" in screen and "make demo" in screen
    assert "https://download.pytorch.org/whl/cpu" in screen  # the smaller install, beside the default
    assert "GB" in screen  # and what the default costs a CPU-only machine


def test_the_ci_runs_the_test_command_as_the_readme_shows_it():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "make test" in ci and "make docs" in ci


def test_the_docs_build_strict_with_every_link_and_anchor_resolved(tmp_path):
    missing = [name for name in ("mkdocs", "material") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed: pip install -e '.[docs]' (dev includes it)")
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml")]
        + ["--site-dir", str(site)],
        cwd=tmp_path,  # not the checkout: the README snippets are found from mkdocs.yml's folder
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    pages = list(site.rglob("*.html"))
    assert (site / "reliability" / "outputs.html").is_file() and len(pages) > 20
    # The sections included from the README are rendered, not left as include lines.
    assert "greedy clone frames" in (site / "why-labels.html").read_text(encoding="utf-8")
    assert "arabic-walkthrough:start" in (site / "arabic-walkthrough.html").read_text(encoding="utf-8")
    # Nothing is fetched from a font service when a page is read (theme.font: false).
    assert not [p for p in pages if "fonts.googleapis" in p.read_text(encoding="utf-8")]


def test_every_readme_section_the_docs_include_is_marked_in_the_readme():
    readme = README.read_text(encoding="utf-8")
    names = {n for page in (ROOT / "docs").rglob("*.md") for n in INCLUDE.findall(page.read_text("utf-8"))}
    assert names >= {"why", "walkthrough", "pipeline"}
    for name in names:
        assert f"<!-- --8<-- [start:{name}] -->" in readme and f"<!-- --8<-- [end:{name}] -->" in readme


def make_n(venv: Path, *args: str) -> str:
    """What `make -n test|demo ... VENV=venv` would run, one command a line."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    }  # under make test
    proc = subprocess.run(
        ["make", "-n", "--no-print-directory", f"VENV={venv}", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_sets_up_the_environment_only_when_it_is_missing_or_stale(tmp_path):
    venv = tmp_path / "venv"
    setup = f"python3 -m venv {venv}\n{venv}/bin/pip install -e '.[dev]'\ntouch {venv}/.installed\n"
    assert make_n(venv, "test") == setup + f"{venv}/bin/python -m pytest -q\n"
    assert make_n(venv, "demo") == setup + f"{venv}/bin/higgs-tune demo\n"
    cpu = make_n(venv, "test", "TORCH=cpu")
    assert (
        "pip install --index-url https://download.pytorch.org/whl/cpu torch==2.9.1 torchaudio==2.9.1" in cpu
    )

    venv.mkdir()
    stamp = venv / ".installed"
    stamp.touch()
    newer = (ROOT / "pyproject.toml").stat().st_mtime + 10
    os.utime(stamp, (newer, newer))  # current: straight to the command
    assert make_n(venv, "test") == f"{venv}/bin/python -m pytest -q\n"
    os.utime(stamp, (newer - 20, newer - 20))  # pyproject.toml changed since: set up again
    assert make_n(venv, "test").startswith(f"python3 -m venv {venv}\n")
