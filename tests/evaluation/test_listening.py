"""The blind A/B listening test: a page that hides which clone is which, keeps answers across a reload,
exports them, and `listen-score` un-blinds them into a preference with a Wilson interval."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import AUDIO_STATES_JS, open_page

from higgs_tune.evaluation.listening import write_listening_test
from higgs_tune.evaluation.listening_score import score_listening_test, wilson_interval


def test_ab_page_hides_the_systems_and_round_trips_answers_into_listen_score(
    eval_dir, browser, tmp_path, run_cli
):
    code, stdout, _ = run_cli("listen", eval_dir, "--out", tmp_path / "ab", "--seed", "3")
    assert code == 0 and "index.html" in stdout
    key = json.loads((tmp_path / "ab" / "key.json").read_text())
    trials = key["trials"]
    assert len(trials) + len(key["left_out"]) == 3 and trials
    page_html = (tmp_path / "ab" / "index.html").read_text(encoding="utf-8")
    for secret in ("finetuned", "fine-tune", "base", "key.json", "eval"):
        assert secret not in page_html.lower(), secret
    assert not list((tmp_path / "ab").rglob("*finetuned*")) and not list((tmp_path / "ab").rglob("*base*"))

    page, errors = open_page(browser, tmp_path / "ab" / "index.html")
    states = page.evaluate(AUDIO_STATES_JS)
    assert len(states) == 3 * len(trials)  # reference, A and B
    assert all(s["how"] == "loaded" and s["duration"] > 0 for s in states), states
    texts = page.locator(".trial .text")
    directions = {texts.nth(i).evaluate("(e) => getComputedStyle(e).direction") for i in range(texts.count())}
    assert "rtl" in directions  # the Arabic samples read right to left
    page.fill("#listener", "ana")
    choices = {"similar": "A", "natural": "same"}
    for t in trials:
        for question, choice in choices.items():
            page.check(f"input[name='{t['trial']}/{question}'][value='{choice}']")
    page.reload()  # answers survive in the browser's storage
    assert page.input_value("#listener") == "ana"
    assert page.is_checked(f"input[name='{trials[0]['trial']}/similar'][value='A']")
    assert page.inner_text("#progress") == f"{len(trials)} of {len(trials)} answered"
    with page.expect_download() as download:
        page.click("#export")
    answers = tmp_path / "answers.json"
    download.value.save_as(answers)
    assert not errors, errors

    code, stdout, _ = run_cli("listen-score", tmp_path / "ab" / "key.json", answers)
    assert code == 0, stdout
    tuned_as_a = sum(t["A"] == "finetuned" for t in trials)
    assert f"fine-tuned {tuned_as_a}, base model {len(trials) - tuned_as_a}, same 0, unanswered 0" in stdout
    assert f"fine-tuned 0, base model 0, same {len(trials)}, unanswered 0" in stdout and "ana" in stdout


def test_ab_order_is_seeded_and_mixed(eval_dir, tmp_path):
    orders = {}
    for seed in range(6):
        write_listening_test(eval_dir, tmp_path / f"ab{seed}", seed)
        orders[seed] = json.loads((tmp_path / f"ab{seed}" / "key.json").read_text())["trials"]
    write_listening_test(eval_dir, tmp_path / "again", 0)
    assert json.loads((tmp_path / "again" / "key.json").read_text())["trials"] == orders[0]
    firsts = {t["A"] for trials in orders.values() for t in trials}
    assert firsts == {"base", "finetuned"}


def _key(tmp_path: Path, trials: int) -> Path:
    key = {
        "test_id": "abc",
        "trials": [
            {
                "trial": f"t{i:03d}",
                "id": f"s{i}",
                **({"A": "finetuned", "B": "base"} if i % 2 else {"A": "base", "B": "finetuned"}),
            }
            for i in range(trials)
        ],
    }
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key))
    return path


def _answers(tmp_path: Path, name: str, answers: dict, test_id: str = "abc") -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"test_id": test_id, "listener": name, "answers": answers}))
    return path


def test_listen_score_unblinds_pools_listeners_and_counts_ties_apart(tmp_path):
    key = _key(tmp_path, 4)  # t000 and t002 play the base as A; t001 and t003 the fine-tune
    one = _answers(tmp_path, "one", {"t000": {"similar": "B", "natural": "A"}, "t001": {"similar": "A"}})
    two = _answers(
        tmp_path,
        "two",
        {"t001": {"similar": "B"}, "t002": {"similar": "B"}, "t003": {"similar": "same", "natural": "B"}},
    )
    preferences, listeners, systems = score_listening_test(key, [one, two])
    assert listeners == ["one", "two"] and systems == {"base": "base model", "finetuned": "fine-tuned"}
    similar, natural = preferences
    assert (similar.finetuned, similar.base, similar.same, similar.unanswered) == (3, 1, 1, 3)
    assert (natural.finetuned, natural.base, natural.same, natural.unanswered) == (0, 2, 0, 6)
    assert similar.share == 0.75 and natural.share == 0.0


def test_wilson_interval_matches_the_textbook_values():
    assert wilson_interval(7, 10) == pytest.approx((0.3968, 0.8922), abs=1e-4)
    assert wilson_interval(0, 5) == pytest.approx((0.0, 0.4345), abs=1e-4)
    assert wilson_interval(0, 0) is None


def test_listen_score_names_the_file_and_the_fix(tmp_path, run_cli):
    key = _key(tmp_path, 2)
    cases = {
        _answers(tmp_path, "other", {}, test_id="xyz"): "pass the key.json",
        _answers(tmp_path, "typo", {"t000": {"similar": "C"}}): "'similar' = 'C'",
        _answers(tmp_path, "unknown", {"t999": {"similar": "A"}}): "unknown sample 't999'",
    }
    for path, message in cases.items():
        code, _, err = run_cli("listen-score", key, path)
        assert code == 2 and str(path) in err and message in err and "Traceback" not in err, err
    answers = tmp_path / "other.json"
    code, _, err = run_cli("listen-score", answers, answers)  # answers where the key should be
    assert code == 2 and f"{answers}: is not a listening test's key.json" in err, err


def test_listen_needs_an_eval_with_a_baseline(tmp_path, run_cli):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "report.json").write_text(json.dumps({"samples": {"finetuned": []}}))
    code, _, err = run_cli("listen", tmp_path / "eval", "--out", tmp_path / "ab")
    assert code == 2 and "--baseline" in err and "Traceback" not in err, err


def _snapshot(root: Path) -> dict[str, bytes | str | None]:
    """Every entry under `root`: a file's bytes, a link's target, None for a folder."""
    return {
        str(p.relative_to(root)): str(p.readlink())
        if p.is_symlink()
        else p.read_bytes()
        if p.is_file()
        else None
        for p in sorted(root.rglob("*"))
    }


def test_listen_refuses_an_out_folder_that_holds_anything_and_leaves_it_byte_identical(
    eval_dir, tmp_path, run_cli
):
    out = tmp_path / "ab"
    (out / "clips").mkdir(parents=True)
    for i in range(7):
        (out / "clips" / f"take{i}.wav").write_bytes(f"my recording {i}".encode())
    (out / "index.html").write_text("my own page")
    (out / "key.json").write_text('{"mine": true}')
    before = _snapshot(out)
    code, _, err = run_cli("listen", eval_dir, "--out", out)
    assert code == 2 and "Traceback" not in err, err
    assert f"--out {out} is not empty" in err and "nothing in it is overwritten or deleted" in err, err
    assert _snapshot(out) == before


def _tampered_eval(eval_dir: Path, tmp_path: Path) -> tuple[Path, dict, int]:
    """A copy of `eval_dir` to edit, its report, and the index of a sample with audio from both systems."""
    copy = tmp_path / "eval"
    shutil.copytree(eval_dir, copy, symlinks=True)
    report = json.loads((copy / "report.json").read_text(encoding="utf-8"))
    samples = report["samples"]
    index = next(i for i, b in enumerate(samples["base"]) if b["wav"] and samples["finetuned"][i]["wav"])
    return copy, report, index


@pytest.mark.parametrize(
    "system,field,value",
    [
        ("finetuned", "wav", "SECRET"),  # an absolute path outside the eval folder
        ("finetuned", "wav", "../../secret.txt"),
        ("base", "wav", "link.wav"),  # a link inside the eval folder to a file outside it
        ("base", "reference", "SECRET"),
        ("base", "reference", "../secret.txt"),
        ("base", "ref_audio", "SECRET"),  # a report.json from before `reference` was recorded
    ],
)
def test_listen_plays_only_clips_inside_the_eval_folder(eval_dir, tmp_path, run_cli, system, field, value):
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    copy, report, index = _tampered_eval(eval_dir, tmp_path)
    value = str(secret) if value == "SECRET" else value
    if value == "link.wav":
        (copy / system / value).symlink_to(secret)
    row = report["samples"][system][index]
    if field == "ref_audio":
        assert (copy / row["reference"]).is_file()  # the copy `eval` made
        for rows in report["samples"].values():  # as older reports were: only the original's path
            for r in rows:
                del r["reference"]
        (copy / "report.json").write_text(json.dumps(report), encoding="utf-8")
        code, _, err = run_cli("listen", copy, "--out", tmp_path / "old")  # found by its name in references/
        assert code == 0, err
        players = (tmp_path / "old" / "clips").iterdir()
        assert sum(p.read_bytes() == (copy / row["ref_audio"]).read_bytes() for p in players) >= 1
    row[field] = value
    (copy / "report.json").write_text(json.dumps(report), encoding="utf-8")
    before, secret_before = _snapshot(copy), secret.read_bytes()

    code, _, err = run_cli("listen", copy, "--out", tmp_path / "ab")
    assert code == 2 and "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "outside the eval folder" in line]
    assert len(lines) == 1 and f"sample {row['id']!r}: {field} {value!r}" in lines[0], err
    assert not (tmp_path / "ab").exists()  # refused before anything was written
    assert _snapshot(copy) == before and secret.read_bytes() == secret_before


def _hostile_answers(tmp_path: Path, case: str) -> Path:
    """An answer file (or what stands where one should) of one hostile kind, for test_listen_score_refuses."""
    path = tmp_path / f"{case}.json"
    good = {"test_id": "abc", "listener": "ana", "answers": {"t000": {"similar": "A"}}}
    if case == "listener_list":
        path.write_text(json.dumps({**good, "listener": ["ana", "omar"]}))
    elif case == "listener_dict":
        path.write_text(json.dumps({**good, "listener": {"name": "ana"}}))
    elif case == "long_number":
        path.write_text(json.dumps(good)[:-1] + ', "exported": ' + "9" * 5000 + "}")
    elif case == "deep_nesting":
        path.write_text(json.dumps(good)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    elif case == "utf16":
        path.write_text(json.dumps(good), encoding="utf-16")
    elif case == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    elif case == "folder":
        path.mkdir()
    return path


def _hostile_key(tmp_path: Path, case: str) -> Path:
    """A key.json of one wrong shape."""
    key = json.loads(_key(tmp_path, 2).read_text())
    trial = key["trials"][0]
    shapes = {
        "trials_not_a_list": {**key, "trials": 5},
        "trial_not_a_dict": {**key, "trials": ["t000"]},
        "trial_without_side": {**key, "trials": [{"trial": "t000", "A": "base"}]},
        "side_unknown": {**key, "trials": [{**trial, "A": "other"}]},
        "trial_name_a_list": {**key, "trials": [{**trial, "trial": ["t000"]}]},
        "trial_twice": {**key, "trials": [trial, trial]},
        "test_id_a_dict": {**key, "test_id": {"id": 1}},
        "systems_a_list": {**key, "systems": ["base"]},
    }
    path = tmp_path / "key.json"
    path.write_text(json.dumps(shapes[case]))
    return path


ANSWER_CASES = [
    "listener_list",
    "listener_dict",
    "long_number",
    "deep_nesting",
    "utf16",
    "binary",
    "folder",
]
KEY_CASES = [
    "trials_not_a_list",
    "trial_not_a_dict",
    "trial_without_side",
    "side_unknown",
    "trial_name_a_list",
    "trial_twice",
    "test_id_a_dict",
    "systems_a_list",
]


@pytest.mark.parametrize("case", ANSWER_CASES + KEY_CASES + ["same_file_thrice", "same_content"])
def test_listen_score_refuses_hostile_inputs_in_one_line(tmp_path, run_cli, case):
    key = _key(tmp_path, 2)
    good = _answers(tmp_path, "good", {"t001": {"natural": "B"}})
    if case in ANSWER_CASES:
        args, named = [key, good, _hostile_answers(tmp_path, case)], tmp_path / f"{case}.json"
    elif case in KEY_CASES:
        args, named = [_hostile_key(tmp_path, case), good], tmp_path / "key.json"
    elif case == "same_file_thrice":  # counted three times, one listener's answers narrowed the interval
        args, named = [key, good, good, good], good
    else:
        copy = tmp_path / "copy.json"
        copy.write_bytes(good.read_bytes())
        args, named = [key, good, copy], copy
    code, stdout, err = run_cli("listen-score", *args)
    assert code == 2 and "Traceback" not in err and not stdout, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"{named}: " in lines[0], err


def test_listen_score_prints_listener_names_without_their_control_characters(tmp_path, run_cli):
    key = _key(tmp_path, 2)
    name = "eve\x1b]0;pwned\x07\r\x9b2J\u202edone"  # a terminal title, a carriage return, C1 CSI, RLO
    answers = _answers(tmp_path, "eve", {"t000": {"similar": "A"}})
    answers.write_text(json.dumps({**json.loads(answers.read_text()), "listener": name}))
    code, stdout, err = run_cli("listen-score", key, answers)
    assert code == 0, err
    first = stdout.splitlines()[0]
    assert first == "1 listener(s): eve\\x1b]0;pwned\\x07\\r\\x9b2J\\u202edone", first
    assert all(c == "\n" or c.isprintable() for c in stdout), repr(stdout)


def test_control_characters_in_a_text_never_reach_the_ab_page(eval_dir, tmp_path):
    """A sample text with NULs, escapes and a bidi override: index.html holds no control byte."""
    from test_html_report import CONTROL_BYTES, CONTROLS, HIDDEN

    copy = tmp_path / "eval"
    shutil.copytree(eval_dir, copy)
    report = json.loads((copy / "report.json").read_text(encoding="utf-8"))
    for rows in report["samples"].values():
        for row in rows:
            row["text"] = "text " + CONTROLS
    (copy / "report.json").write_text(json.dumps(report), encoding="utf-8")
    data = write_listening_test(copy, tmp_path / "ab").read_bytes()
    assert not CONTROL_BYTES.findall(data), CONTROL_BYTES.findall(data)[:5]
    text = data.decode("utf-8")
    assert not HIDDEN.findall(text) and "\u2400\u00d7210a" in text
