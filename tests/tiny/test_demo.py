"""The demo's output folder: it never writes over what it did not write (the whole demo runs in
tests/test_cli.py)."""

from higgs_tune.tiny.demo import DEMO_MARK, _claim_demo_folder


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
