"""Each source layout ingests into a corpus that `pairs` reads; the ASR path runs on the tiny Whisper."""

import json
from pathlib import Path

import pytest
import soundfile as sf
from speech import SR, TEXTS, clip, write_common_voice, write_folder, write_ljspeech, write_saved_dataset

from higgs_tune.data.pairs import build_pairs
from higgs_tune.data.problems import CODES
from higgs_tune.data.samples import SampleError
from higgs_tune.ingest.run import ingest
from higgs_tune.ingest.settings import FilterSettings, IngestSettings, SliceSettings, SourceSettings
from higgs_tune.ingest.sources import detect_source

ASR_TOKENS = 8  # the tiny Whisper's words are noise: a few are enough, and fast


def settings(**fields) -> IngestSettings:
    fields = {"slicing": SliceSettings(max_seconds=8.0), "filters": FilterSettings(max_seconds=8.0), **fields}
    return IngestSettings(asr_max_new_tokens=ASR_TOKENS, **fields)


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def asr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from higgs_tune.tiny.eval_models import build_tiny_asr

    return build_tiny_asr(tmp_path_factory.mktemp("asr") / "whisper")


@pytest.mark.parametrize(
    ("kind", "write", "speakers"),
    [
        ("ljspeech", write_ljspeech, {"ljspeech"}),  # one speaker: the folder
        ("common_voice", write_common_voice, {"client0", "client1"}),
        ("dataset", write_saved_dataset, {"client0", "client1"}),
    ],
)
def test_a_transcribed_source_ingests_into_a_corpus_pairs_reads(tmp_path, kind, write, speakers):
    source = write(tmp_path / kind)
    assert detect_source(str(source)) == kind
    summary = ingest(str(source), tmp_path / "corpus", settings())
    kept = rows(tmp_path / "corpus" / "utterances.jsonl")
    assert summary.kept == len(kept) >= 3 and summary.rejected == 0
    assert {row["speaker"] for row in kept} == speakers
    assert {row["text"] for row in kept} <= set(TEXTS)
    for row in kept:
        assert (tmp_path / "corpus" / row["audio"]).is_file()
        assert {"id", "audio", "text", "speaker", "duration", "source", "start", "end"} <= row.keys()
    result = build_pairs(tmp_path / "corpus" / "utterances.jsonl")
    assert len(result.pairs) == len(kept) and not result.skipped_speakers


def test_dataset_columns_are_chosen_by_option(tmp_path):
    source = write_saved_dataset(tmp_path / "ds")
    with pytest.raises(SampleError, match="no column 'words'"):
        ingest(str(source), tmp_path / "c1", settings(source=SourceSettings(text_column="words")))
    options = SourceSettings(speaker_column="sentence")  # any column can name the speaker
    ingest(str(source), tmp_path / "c2", settings(source=options))
    assert {row["speaker"] for row in rows(tmp_path / "c2" / "utterances.jsonl")} <= set(TEXTS)


def test_untranscribed_long_recordings_are_cut_and_transcribed(tmp_path, asr_dir):
    source = write_folder(tmp_path / "rec")
    summary = ingest(str(source), tmp_path / "corpus", settings(asr_model=str(asr_dir), language="en"))
    kept = rows(tmp_path / "corpus" / "utterances.jsonl")
    rejected = rows(tmp_path / "corpus" / "rejected.jsonl")
    cut = [row for row in kept + rejected if row["source"].endswith("long.flac")]
    assert len(cut) >= 8  # two 6-utterance recordings cut at their pauses
    assert all(row["duration"] <= 8.0 for row in cut)
    # the tiny Whisper's words are noise: each cut clip got a transcript or was rejected for its text
    assert all(row["text"] for row in kept)
    assert {row["code"] for row in rejected} <= {"chars_per_second", "empty_text"}
    assert summary.kept + summary.rejected == len(cut) + 4
    assert {row["speaker"] for row in kept} == {"amal", "omar"}
    # the ASR's confidence: on every clip it transcribed, on none with a given transcript
    transcribed = [row for row in kept if row["source"].endswith("long.flac")]
    assert transcribed and all(0 <= row["asr_confidence"] <= 1 for row in transcribed)
    given = [row for row in kept if not row["source"].endswith("long.flac")]
    assert len(given) == 4 and not any("asr_confidence" in row for row in given)


def test_the_transcript_check_rejects_text_the_asr_does_not_hear(tmp_path, asr_dir):
    source = write_ljspeech(tmp_path / "lj")
    checked = settings(asr_model=str(asr_dir), check_transcripts=True)
    ingest(str(source), tmp_path / "strict", checked)
    rejected = rows(tmp_path / "strict" / "rejected.jsonl")
    # the tiny Whisper hears noise, so no given text matches it
    assert [row["code"] for row in rejected] == ["transcript_mismatch"] * 3
    assert not rows(tmp_path / "strict" / "utterances.jsonl")
    assert not list((tmp_path / "strict" / "clips").glob("*.flac"))  # rejected clips are not left behind
    lenient = settings(
        asr_model=str(asr_dir), check_transcripts=True, filters=FilterSettings(max_seconds=8.0, max_cer=1e9)
    )
    ingest(str(source), tmp_path / "lenient", lenient)
    kept = rows(tmp_path / "lenient" / "utterances.jsonl")
    assert len(kept) == 3 and not any("asr_confidence" in row for row in kept)  # checked, not transcribed


def test_a_resumed_corpus_must_keep_its_settings(tmp_path):
    source = write_ljspeech(tmp_path / "lj")
    ingest(str(source), tmp_path / "corpus", settings())
    with pytest.raises(SampleError, match="other settings.*min_snr_db"):
        ingest(
            str(source), tmp_path / "corpus", settings(filters=FilterSettings(max_seconds=8.0, min_snr_db=3))
        )


def test_unsupported_audio_is_named_with_the_supported_formats(tmp_path):
    (tmp_path / "rec" / "spk").mkdir(parents=True)
    (tmp_path / "rec" / "spk" / "talk.m4a").write_bytes(b"\0" * 100)
    with pytest.raises(SampleError, match=r"\.m4a audio is not supported.*\.wav, \.flac, \.ogg, \.mp3"):
        ingest(str(tmp_path / "rec"), tmp_path / "corpus", settings())


def test_an_undecodable_recording_is_rejected_with_its_code(tmp_path):
    source = write_ljspeech(tmp_path / "lj")
    (source / "wavs" / "LJ001-0001.wav").write_bytes(b"RIFF junk, not audio")
    summary = ingest(str(source), tmp_path / "corpus", settings())
    assert summary.kept == 2 and dict(summary.reasons) == {"audio_unreadable": 1}
    assert rows(tmp_path / "corpus" / "rejected.jsonl")[0]["source"] == "wavs/LJ001-0001"


def test_a_speaker_table_names_the_voices_of_a_flat_folder(tmp_path):
    from speech import SR, clip

    from higgs_tune.ingest.sources import folder

    (tmp_path / "flat").mkdir()
    for i in range(3):
        sf.write(tmp_path / "flat" / f"r{i}.wav", clip(2.0, i), SR)
    (tmp_path / "flat" / "speakers.csv").write_text("file,speaker\nr0.wav,hala\nr2.wav,hala\n")
    assert [r.speaker for r in folder(tmp_path / "flat")] == ["hala", "flat", "hala"]


def test_the_ingest_codes_are_problem_codes():
    assert {"low_snr", "little_speech", "transcript_mismatch", "low_asr_confidence"} <= CODES.keys()


def test_asr_confidences_do_not_depend_on_batching_and_unsure_transcripts_are_rejected(tmp_path, asr_dir):
    for i in range(3):
        (tmp_path / "rec" / "spk").mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / "rec" / "spk" / f"clip{i}.wav", clip(1.2, i), SR)  # no transcript: the ASR's
    source, asr = str(tmp_path / "rec"), str(asr_dir)
    ingest(source, tmp_path / "together", settings(asr_model=asr))  # one batch of 3
    ingest(source, tmp_path / "apart", settings(asr_model=asr, chunk_size=1))  # 3 batches of 1
    kept = rows(tmp_path / "together" / "utterances.jsonl")
    assert len(kept) == 3 and all(0 <= row["asr_confidence"] <= 1 for row in kept)
    together, apart = (tmp_path / name / "utterances.jsonl" for name in ("together", "apart"))
    assert together.read_bytes() == apart.read_bytes()  # so a resumed run writes the same corpus
    unsure = FilterSettings(max_seconds=8.0, min_asr_confidence=0.5)  # the tiny Whisper's is about 0.005
    summary = ingest(source, tmp_path / "unsure", settings(asr_model=asr, filters=unsure))
    assert summary.kept == 0 and summary.reasons["low_asr_confidence"] == 3
    message = rows(tmp_path / "unsure" / "rejected.jsonl")[0]["message"]
    assert "ASR confidence 0.00" in message and "low_asr_confidence" in summary.table()
