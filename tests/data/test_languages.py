"""One reading of `--language` for every command (`data.languages`): codes, names and locale tags alike."""

import json

import pytest
from conftest import entry, write_jsonl

from higgs_tune.data.languages import parse_language
from higgs_tune.errors import UserError

UNKNOWN = "--language 'klingon' is not a language we know"


@pytest.mark.parametrize("spelling", ["ar", "AR", "ar-SA", "ar_EG", "arabic", "Arabic", " ARABIC "])
def test_every_spelling_of_arabic_is_ar(spelling):
    assert parse_language(spelling) == "ar"


@pytest.mark.parametrize("spelling", ["en", "EN", "en-US", "en_GB", "english", "English"])
def test_every_spelling_of_english_is_en(spelling):
    assert parse_language(spelling) == "en"


def test_other_names_and_no_language():
    assert parse_language("Farsi") == parse_language("fa-IR") == "fa"
    assert parse_language("zh-Hant-TW") == parse_language("Mandarin") == "zh"
    assert parse_language(None) is None


@pytest.mark.parametrize("spelling", ["klingon", "", "a", "xx-YY", "ar SA"])
def test_an_unknown_language_is_a_user_error_naming_the_option(spelling):
    with pytest.raises(UserError, match=f"--language {spelling!r} is not a language we know"):
        parse_language(spelling)


def test_validate_takes_every_spelling(tmp_path, make_wav, run_cli):
    make_wav("clips/ref.wav", seed=1)
    make_wav("clips/tgt.wav", seed=2)
    manifest = write_jsonl(tmp_path / "m.jsonl", [entry("ok")])
    for spelling in ("ar", "AR", "ar-SA", "arabic", "Arabic"):
        report = tmp_path / f"report-{spelling}.json"
        code, stdout, err = run_cli("validate", manifest, "--language", spelling, "--report", report)
        assert code == 0, err
        assert json.loads(report.read_text(encoding="utf-8"))["settings"]["language"] == "ar"
    code, stdout, err = run_cli("validate", manifest, "--language", "klingon")
    assert code == 2 and UNKNOWN in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "next_check"),
    [
        (("eval", "--manifest", "absent.jsonl", "--model", "absent", "--out", "out"), "absent"),
        (("prefs", "--manifest", "absent.jsonl", "--model", "absent", "--out", "out"), "absent"),
        (("ingest", "empty-folder", "--out", "out"), "empty-folder: has no audio files"),
    ],
)
def test_every_command_reads_language_the_same_way(tmp_path, monkeypatch, run_cli, args, next_check):
    # An unknown language is refused in one line before anything runs; a known spelling gets past it.
    (tmp_path / "empty-folder").mkdir()
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(*args, "--language", "klingon")
    assert code == 2 and UNKNOWN in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    code, _, err = run_cli(*args, "--language", "ar-SA")
    assert code == 2 and "not a language we know" not in err and next_check in err
