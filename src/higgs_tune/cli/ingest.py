"""The command of the raw-audio stage: `ingest` recordings or a dataset into a corpus for `pairs`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from higgs_tune.cli.app import app
from higgs_tune.cli.options import language_option
from higgs_tune.ingest.settings import FilterSettings, IngestSettings, SliceSettings

log = logging.getLogger("higgs_tune")
_SLICE = SliceSettings()
_FILTER = FilterSettings()
_INGEST = IngestSettings()

SourceArg = Annotated[
    str,
    typer.Argument(
        help="A folder of recordings (speaker = sub-folder, NAME.txt = transcript), an LJSpeech or Common "
        "Voice folder, a datasets save_to_disk folder, or a hub dataset name."
    ),
]
OutOpt = Annotated[Path, typer.Option(help="Corpus folder: clips/, utterances.jsonl, rejected.jsonl.")]
LanguageOpt = Annotated[
    str | None,
    typer.Option(
        help="Language (ar, arabic, ar-SA): forces the ASR's, normalises CER.", callback=language_option
    ),
]
AsrModelOpt = Annotated[
    str | None, typer.Option(help="Whisper model for clips without text (default: the one eval uses).")
]
CheckOpt = Annotated[
    bool, typer.Option("--check-transcripts", help="Transcribe clips with text too; reject mismatches.")
]
WorkersOpt = Annotated[int, typer.Option(help="Decoding/slicing processes (1: in this process).")]
MinSecondsOpt = Annotated[float, typer.Option(help="Shortest clip kept.")]
MaxSecondsOpt = Annotated[float, typer.Option(help="Longest clip; longer recordings are cut at pauses.")]
PauseOpt = Annotated[float, typer.Option(help="Pauses this long (s) are sentence ends: cut there.")]
MaxCerOpt = Annotated[float, typer.Option(help="Highest CER of a given text against the ASR's.")]
MinConfidenceOpt = Annotated[
    float, typer.Option(help="Lowest ASR confidence (0-1) of a transcript the ASR wrote (0: all kept).")
]
SnrOpt = Annotated[float, typer.Option(help="Lowest estimated SNR (dB) kept.")]
SpeechOpt = Annotated[float, typer.Option(help="Least share of a clip that must be speech.")]
SplitOpt = Annotated[str | None, typer.Option(help="Dataset split (hub, or a saved DatasetDict).")]
ConfigOpt = Annotated[str | None, typer.Option(help="Hub dataset configuration (e.g. a language).")]
AudioColumnOpt = Annotated[str | None, typer.Option(help="Dataset audio column (default: audio).")]
TextColumnOpt = Annotated[
    str | None,
    typer.Option(
        help="Dataset text column (default: text, sentence, transcription, ...); for an LJSpeech folder, "
        "the column of metadata.csv: 1 (text) or 2 (normalized text; the default where a row has it)."
    ),
]
SpeakerColumnOpt = Annotated[
    str | None, typer.Option(help="Dataset speaker column (default: speaker, speaker_id, client_id).")
]
DeviceOpt = Annotated[str | None, typer.Option(help="Where the ASR runs (default: cuda if any).")]
BatchOpt = Annotated[int, typer.Option(help="Clips per ASR batch.")]
TokensOpt = Annotated[
    int | None, typer.Option(help="Most tokens the ASR writes per 30 s (default: the model's limit).")
]
ChunkOpt = Annotated[
    int, typer.Option(help="Recordings per completion record (the most a killed run redoes).")
]


@app.command()
def ingest(
    source: SourceArg,
    out: OutOpt,
    language: LanguageOpt = None,
    asr_model: AsrModelOpt = None,
    check_transcripts: CheckOpt = False,
    max_cer: MaxCerOpt = _FILTER.max_cer,
    min_asr_confidence: MinConfidenceOpt = _FILTER.min_asr_confidence,
    workers: WorkersOpt = 1,
    min_seconds: MinSecondsOpt = _SLICE.min_seconds,
    max_seconds: MaxSecondsOpt = _SLICE.max_seconds,
    sentence_pause: PauseOpt = _SLICE.sentence_pause,
    min_snr_db: SnrOpt = _FILTER.min_snr_db,
    min_speech_fraction: SpeechOpt = _FILTER.min_speech_fraction,
    split: SplitOpt = None,
    config: ConfigOpt = None,
    audio_column: AudioColumnOpt = None,
    text_column: TextColumnOpt = None,
    speaker_column: SpeakerColumnOpt = None,
    device: DeviceOpt = None,
    asr_batch_size: BatchOpt = _INGEST.asr_batch_size,
    asr_max_new_tokens: TokensOpt = None,
    chunk_size: ChunkOpt = _INGEST.chunk_size,
) -> None:
    """Turn raw audio into a corpus of clean, transcribed clips that `pairs` takes as it is.

    Long recordings are cut at pauses (silero-vad), clips without text are transcribed with Whisper, and
    bad clips are rejected with the codes `validate` uses. Resumes an interrupted run; under torchrun the
    processes split the recordings.
    """
    from higgs_tune.ingest.run import ingest as run_ingest
    from higgs_tune.scoring.measuring import MeasuringModelError

    bounds = {"min_seconds": min_seconds, "max_seconds": max_seconds}
    # Given as values, not as models, so that every bad one is in the one error (`command_settings`).
    settings = IngestSettings(
        slicing=dict(bounds, sentence_pause=sentence_pause),
        filters=dict(bounds, min_snr_db=min_snr_db, min_speech_fraction=min_speech_fraction, max_cer=max_cer)
        | {"min_asr_confidence": min_asr_confidence},
        source=dict(split=split, config=config, audio_column=audio_column, text_column=text_column)
        | {"speaker_column": speaker_column},
        language=language,
        asr_model=asr_model,
        check_transcripts=check_transcripts,
        chunk_size=chunk_size,
        asr_max_new_tokens=asr_max_new_tokens,
        asr_batch_size=asr_batch_size,
        device=device,
    )
    try:
        summary = run_ingest(source, out, settings, workers=workers)
    except MeasuringModelError as e:
        log.error("%s", e)
        raise typer.Exit(2) from None
    if summary is not None:
        typer.echo(summary.table())
        typer.echo(f"corpus: {out / 'utterances.jsonl'} (next: higgs-tune pairs {out / 'utterances.jsonl'})")
