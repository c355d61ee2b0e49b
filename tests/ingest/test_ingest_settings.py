"""`ingest`'s settings refuse every bad value at once, as one line naming each option and its rule, before
anything is read or written."""

import pytest

from higgs_tune.errors import UserError
from higgs_tune.ingest.settings import FilterSettings, IngestSettings, SliceSettings


def test_bad_values_are_one_error_naming_every_option(run_cli, tmp_path) -> None:
    out = tmp_path / "corpus"
    args = ["--min-seconds", 5, "--max-seconds", 4, "--min-asr-confidence", 2, "--chunk-size", 0]
    code, _, err = run_cli("ingest", tmp_path / "no-such-source", "--out", out, *args)
    assert code == 2
    lines = [line for line in err.splitlines() if "--" in line]
    assert len(lines) == 1, err
    for expected in (
        "--min-seconds (5) must be less than --max-seconds (4): give a smaller --min-seconds or a larger",
        "--min-asr-confidence: input should be less than or equal to 1 (got 2.0)",
        "--chunk-size: input should be greater than or equal to 1 (got 0)",
    ):
        assert expected in lines[0]
    assert not out.exists()


def test_settings_are_frozen_and_refuse_unknown_fields() -> None:
    with pytest.raises(UserError, match="--sentence-pause: input should be greater than 0"):
        SliceSettings(sentence_pause=0)
    with pytest.raises(UserError, match="--max-snr-db: not a setting"):
        FilterSettings(max_snr_db=3)
    settings = IngestSettings()
    with pytest.raises(ValueError, match="frozen"):
        settings.chunk_size = 3  # type: ignore[misc]
