"""The demo's output folder: it never writes over what it did not write (the whole demo runs in
tests/test_cli.py)."""

import shlex

from higgs_tune.tiny.demo import DEMO_MARK, _claim_demo_folder, serve_command


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_demo_refuses_a_folder_it_did_not_write_before_any_work(tmp_path, run_cli):
    out = tmp_path / "mine"
    (out / "ab").mkdir(parents=True)
    (out / "ab" / "index.html").write_text("my page")
    (out / "notes.txt").write_text("mine")
    before = _snapshot(out)
    code, _, err = run_cli("demo", "--out", out, "--steps", "1")
    assert code == 2 and "is not empty" in err and "Traceback" not in err
    assert _snapshot(out) == before


def test_a_second_demo_replaces_only_the_first_demos_outputs(tmp_path):
    out = tmp_path / "demo"
    _claim_demo_folder(out)
    assert (out / DEMO_MARK).is_file()
    (out / "ab" / "clips").mkdir(parents=True)
    (out / "ab" / "clips" / "a.wav").write_bytes(b"old")
    (out / "demo_summary.json").write_text("{}")
    (out / "notes.txt").write_text("the user's")
    _claim_demo_folder(out)
    assert not (out / "ab").exists() and not (out / "demo_summary.json").exists()
    assert (out / "notes.txt").read_text() == "the user's" and (out / DEMO_MARK).is_file()


def test_the_demos_wall_time_counts_the_whole_command_from_process_start():
    """The demo timed itself from the start of `run_demo`, leaving out Python's start-up and the imports
    (seconds of torch and transformers) that a user timing the command waits through too: a child process
    that sleeps 1 s and then imports the demo reports more than its own timer from its first line, and no
    more than the parent measured around the whole process."""
    import subprocess
    import sys
    import time

    child = (
        "import time; t0 = time.perf_counter(); time.sleep(1.0)\n"
        "from higgs_tune.tiny.demo import command_seconds\n"
        "print(command_seconds(), time.perf_counter() - t0)"
    )
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    parent = time.perf_counter() - started
    command, own = map(float, proc.stdout.split())
    # /proc's start time is in ticks of 1/100 s, so the child's figure may be up to 0.01 s over.
    assert 1.0 < own < command <= parent + 0.01, (own, command, parent)


def test_the_serve_line_is_one_command_a_shell_splits_back_into_the_demos_paths(tmp_path):
    model, run = tmp_path / "my demo" / "tiny-model", tmp_path / "my demo" / "run"
    command = serve_command(model, run)
    assert shlex.split(command) == ["higgs-tune", "serve", "--model", str(model), "--adapter", str(run)]
