"""`eval --benchmark`: each protocol's test set read in its own format (built here: a Habibi subset saved
with `save_to_disk`, a Seed-TTS-Eval `meta.lst` folder), paired by its rule, scored with its own
normalisation and averaging against hand-computed figures, and the clones exported in its layout."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import soundfile as sf
from conftest import fast_tiny_eval_models, tone

from higgs_tune.errors import UserError
from higgs_tune.evaluation.benchmark_data import habibi_pairs, read_habibi, read_seedtts
from higgs_tune.evaluation.benchmark_protocols import (
    Benchmark,
    habibi_corpus_wer,
    habibi_normalize,
    habibi_word_errors,
    parse_benchmark,
    seedtts_mean_wer,
    seedtts_normalize,
    seedtts_wer,
)

# Speakers in dataset order: A B A C A C. A has three rows, B one (its own reference), C two.
SPEAKERS = ["A", "B", "A", "C", "A", "C"]
TEXTS = ["مرحبا بكم", "كيف حالك", "صباح الخير", "شكرا جزيلا", "الى اللقاء", "نعم بالتاكيد"]


def wav_bytes(seed: int, seconds: float = 1.0) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone(seconds, seed=seed), 24_000, format="WAV")
    return buffer.getvalue()


def habibi_subset(folder: Path, as_dict: bool = True, rows: int = 6) -> Path:
    """A Habibi-format subset (`audio`, `text`, `speaker_id`, `dialect`, `duration`) of the first `rows`
    rows, saved to disk."""
    from datasets import Audio, Dataset, DatasetDict

    columns = {
        "audio": [{"path": f"EGY_{i:03d}.wav", "bytes": wav_bytes(i, 0.6)} for i in range(rows)],
        "text": TEXTS[:rows],
        "speaker_id": SPEAKERS[:rows],
        "dialect": ["EGY"] * rows,
        "duration": [1.0] * rows,
    }
    dataset = Dataset.from_dict(columns).cast_column("audio", Audio())
    (DatasetDict({"test": dataset}) if as_dict else dataset).save_to_disk(str(folder))
    return folder


def test_habibi_pairs_every_row_with_its_speakers_previous_row(tmp_path):
    """A's first row takes A's last (wrap-around), B's only row is its own reference, speakers in order of
    first appearance, rows in dataset order; the same from a DatasetDict and a plain Dataset."""
    expected = [  # (target row, reference row)
        (0, 4),
        (2, 0),
        (4, 2),
        (1, 1),
        (3, 5),
        (5, 3),
    ]
    for as_dict in (True, False):
        data = habibi_subset(tmp_path / f"habibi-{as_dict}", as_dict)
        rows = read_habibi(Benchmark("habibi", "EGY"), str(data), tmp_path / f"work-{as_dict}")
        samples = habibi_pairs(rows)
        files = {r.file: r.index for r in rows}
        got = [(int(s.id[4:7]), files[s.ref_audio]) for s in samples]
        assert got == expected
        for s, (target, ref) in zip(samples, expected, strict=True):
            assert s.id == f"EGY_{target:03d}.wav"  # the name the official scorers read the clone by
            assert (s.text, s.ref_text, s.speaker) == (TEXTS[target], TEXTS[ref], SPEAKERS[target])
            assert s.audio is not None and files[s.audio] == target


def test_habibi_reader_names_the_bad_row(tmp_path):
    from datasets import Dataset

    Dataset.from_dict({"text": ["x"], "speaker_id": ["A"]}).save_to_disk(str(tmp_path / "noaudio"))
    with pytest.raises(UserError, match="no column audio"):
        read_habibi(Benchmark("habibi", "MSA"), str(tmp_path / "noaudio"), tmp_path / "w")


def test_habibi_normalisation_by_hand():
    # punctuation and symbols deleted (not spaced), diacritics, letter folds, digits, tatweel, alef runs
    assert habibi_normalize("مَرْحَباً، يا صديقي!") == "مرحبا يا صديقي"
    assert habibi_normalize("پ ڤ آمن أحمد إلى مؤمن بئر سماء مدرسة") == "ب ف امن احمد الى مومن بير سما مدرسه"
    assert habibi_normalize("٣ كتـــب اااا  هنا") == "3 كتب هنا"
    assert habibi_normalize("a+b $5") == "ab 5"  # \p{S} too


def test_habibi_wer_is_corpus_level():
    """Two rows: 1 edit of 1 word, 0 of 4. Corpus WER 1/5 = 0.2; a mean of the rows' WERs would say 0.5."""
    counts = [
        habibi_word_errors("كتاب", "قلم"),
        habibi_word_errors("انا ذهبت الى المدرسه", "أنا ذهبت إلى المدرسة."),
    ]
    assert [(c.errors, c.reference_length) for c in counts] == [(1, 1), (0, 4)]
    assert habibi_corpus_wer(counts) == pytest.approx(0.2)


def test_seedtts_normalisation_and_mean_of_utterances():
    assert seedtts_normalize("Hello, World! It's me.", "en") == "hello world it's me"
    assert seedtts_normalize("你好，世界。", "zh") == "你 好 世 界"
    # en: 1 substitution of 4 words; apostrophe kept, so "its" != "it's"
    assert seedtts_wer("It's a fine day.", "its a fine day", "en") == pytest.approx(0.25)
    # zh per character: 1 of 4
    assert seedtts_wer("你好世界", "你好世间", "zh") == pytest.approx(0.25)
    # the mean of utterances, not corpus: (0.25 + 1.0) / 2, where a corpus WER would be 2/5
    wers = [seedtts_wer("a b c d", "a b c x", "en"), seedtts_wer("e", "f", "en")]
    assert seedtts_mean_wer(wers) == pytest.approx(0.625)


def seedtts_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "prompt-wavs").mkdir()
    for i in range(2):
        sf.write(str(root / "prompt-wavs" / f"p{i}.wav"), tone(0.6, seed=i), 16_000)
    lines = [
        "u1|The prompt text.|prompt-wavs/p0.wav|Hello there.",
        "u2|Another prompt.|prompt-wavs/p1.wav|Good morning, world!|truth.wav",
    ]
    (root / "meta.lst").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_seedtts_reader_and_its_errors(tmp_path):
    root = seedtts_folder(tmp_path / "en")
    samples = read_seedtts(root)
    assert [(s.id, s.ref_audio, s.ref_text, s.text) for s in samples] == [
        ("u1", root / "prompt-wavs/p0.wav", "The prompt text.", "Hello there."),
        ("u2", root / "prompt-wavs/p1.wav", "Another prompt.", "Good morning, world!"),
    ]
    (root / "meta.lst").write_text("u1|a|prompt-wavs/p0.wav\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"meta.lst line 1: 3 fields"):
        read_seedtts(root)
    (root / "meta.lst").write_text("u1|a|prompt-wavs/gone.wav|b\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"meta.lst line 1: prompt clip .*gone.wav is not there"):
        read_seedtts(root)


def test_parse_benchmark():
    assert parse_benchmark("habibi:egy") == Benchmark("habibi", "EGY")
    assert parse_benchmark("seedtts:EN").name == "seedtts:en"
    with pytest.raises(UserError, match="choose one of habibi:MSA"):
        parse_benchmark("habibi:XYZ")


@pytest.fixture(scope="module")
def eval_models(tmp_path_factory):
    return fast_tiny_eval_models(tmp_path_factory.mktemp("bench-eval-models"))


def run_benchmark(name: str, data: Path, out: Path, export: Path, tiny_model_dir, eval_models):
    from higgs_tune.evaluation.benchmark_run import evaluate_benchmark
    from higgs_tune.evaluation.evaluate import EvalSettings
    from higgs_tune.inference.settings import LengthLimit

    bench = parse_benchmark(name)
    asr, speaker = eval_models
    settings = EvalSettings(
        asr_model=str(asr),
        speaker_model=str(speaker),
        language=bench.language,
        limit=LengthLimit(min_seconds=0.5, max_seconds=0.5),
    )
    return evaluate_benchmark(
        bench, str(data), str(tiny_model_dir), None, out, False, settings, export=export
    )


def test_habibi_end_to_end(tmp_path, tiny_model_dir, eval_models):
    """Every row cloned and scored (speakers A B A: a wrap-around and a one-row speaker); the corpus WER
    recomputed by hand from the transcripts; clones exported under their `audio.path`; the report says
    the tiny scorers are not comparable."""
    data = habibi_subset(tmp_path / "habibi", rows=3)
    report = run_benchmark(
        "habibi:EGY", data, tmp_path / "out", tmp_path / "export", tiny_model_dir, eval_models
    )
    rows = report.samples["base"]
    assert [(r["id"], Path(r["ref_audio"]).name) for r in rows] == [
        ("EGY_000.wav", "row-2.wav"),
        ("EGY_002.wav", "row-0.wav"),
        ("EGY_001.wav", "row-1.wav"),
    ]
    edits = words = 0
    for r in rows:
        counts = habibi_word_errors(r["text"], r["transcript"])
        edits, words = edits + counts.errors, words + counts.reference_length
    b = report.benchmark
    assert b.figures["base"]["wer"] == pytest.approx(edits / words)
    assert b.wer_name == "WER-S" and b.utterances == 3 and b.figures["base"]["scored"] == 3
    assert [s["comparable"] for s in b.scorers] == [False, False]
    exported = sorted(p.name for p in (tmp_path / "export" / "base").iterdir())
    assert exported == sorted(r["id"] for r in rows if r["wav"])
    saved = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert saved["benchmark"]["name"] == "habibi:EGY"
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "Benchmark: Habibi EGY (habibi:EGY)" in page and "NOT comparable" in page


def test_seedtts_end_to_end_refuses_a_used_export_folder(tmp_path, tiny_model_dir, eval_models):
    """The mean of per-utterance WERs, recomputed by hand; clones exported as `<utt>.wav`; the published
    Higgs Audio v2 figures shown beside ours; an export folder that holds something is refused first."""
    data = seedtts_folder(tmp_path / "en")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "mine.txt").write_text("x")
    with pytest.raises(UserError, match="--export-clips"):
        run_benchmark("seedtts:en", data, tmp_path / "o1", tmp_path / "used", tiny_model_dir, eval_models)
    assert (tmp_path / "used" / "mine.txt").read_text() == "x"
    report = run_benchmark(
        "seedtts:en", data, tmp_path / "out", tmp_path / "export", tiny_model_dir, eval_models
    )
    rows = report.samples["base"]
    wers = [seedtts_wer(r["text"], r["transcript"], "en") for r in rows]
    assert report.benchmark.figures["base"]["wer"] == pytest.approx(sum(wers) / len(wers))
    written = {p.name for p in (tmp_path / "export" / "base").iterdir()}
    assert written == {f"{r['id']}.wav" for r in rows if r["wav"]}
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "Higgs Audio v2 (base) | 2.44 | 67.70" in md


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "eval needs a test set: --manifest FILE, or --benchmark"),
        (["--benchmark", "habibi:XYZ", "--benchmark-data", "d"], "choose one of habibi:MSA"),
        (["--benchmark", "seedtts:en"], "needs --benchmark-data"),
        (["--manifest", "m.jsonl", "--benchmark", "seedtts:en", "--benchmark-data", "d"], "pass one of them"),
        (["--manifest", "m.jsonl", "--export-clips", "x"], "go with --benchmark"),
    ],
)
def test_eval_cli_refuses_unclear_test_sets_in_one_line(run_cli, tmp_path, args, message):
    code, out, err = run_cli("eval", "--model", tmp_path / "model", "--out", tmp_path / "out", *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def tiny_ctc_model(folder: Path) -> Path:
    """A tiny wav2vec2 CTC checkpoint with an Arabic-letter vocabulary, as Habibi's WER-S models are."""
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    folder.mkdir(parents=True)
    vocab = {"[PAD]": 0, "[UNK]": 1, "|": 2, "ا": 3, "ب": 4, "ت": 5}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    tokenizer = Wav2Vec2CTCTokenizer(
        str(folder / "vocab.json"), unk_token="[UNK]", pad_token="[PAD]", word_delimiter_token="|"
    )
    features = Wav2Vec2FeatureExtractor(sampling_rate=16_000, return_attention_mask=True)
    Wav2Vec2Processor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(folder)
    config = Wav2Vec2Config(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        pad_token_id=0,
    )
    Wav2Vec2ForCTC(config).save_pretrained(folder)
    return folder


def test_a_ctc_checkpoint_transcribes_greedily_one_clip_at_a_time(tmp_path, eval_models):
    """Habibi's WER-S models are wav2vec2 CTC: `--asr-model` takes one, and its transcript is the argmax
    of the logits at 16 kHz decoded by its processor, whatever else is in the batch."""
    import torch
    from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

    from higgs_tune.data.audio import resample
    from higgs_tune.scoring.ctc import CtcTranscriber
    from higgs_tune.scoring.measuring import load_measuring_models

    folder = tiny_ctc_model(tmp_path / "ctc")
    measuring = load_measuring_models(str(folder), str(eval_models[1]), "ar", "cpu", 2)
    assert isinstance(measuring.transcriber, CtcTranscriber)
    clips = [tone(1.0, seed=1), tone(0.6, seed=2)]
    processor, model = Wav2Vec2Processor.from_pretrained(folder), Wav2Vec2ForCTC.from_pretrained(folder)
    expected = []
    for clip in clips:
        inputs = processor(resample(clip, 24_000, 16_000), sampling_rate=16_000, return_tensors="pt")
        with torch.no_grad():
            logits = model(inputs.input_values, attention_mask=inputs.attention_mask).logits
        expected.append(processor.batch_decode(torch.argmax(logits, dim=-1))[0])
    assert measuring.transcriber.transcribe(clips) == expected
