"""Commands that turn clips into codec codes: `encode` files, `prepare` a dataset."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, get_args

import typer

from higgs_tune.cli.app import app
from higgs_tune.cli.options import ModelOpt, language_option
from higgs_tune.config import TextNormalisation
from higgs_tune.data.problems import MAX_SECONDS, MIN_SECONDS
from higgs_tune.prepared.settings import DEFAULT_SHARD_SIZE

log = logging.getLogger("higgs_tune")


@app.command()
def encode(
    audio: Annotated[list[Path], typer.Argument(help="Audio files to encode.")],
    model: ModelOpt,
    out: Annotated[Path, typer.Option(help="Folder for the codes, one NAME.npy [8, T] per clip.")],
) -> None:
    """Encode audio files into codec codes."""
    import numpy as np

    from higgs_tune.model.codes import encode_file
    from higgs_tune.model.loading import load_processor

    _check_distinct_stems(audio)
    processor = load_processor(model)
    out.mkdir(parents=True, exist_ok=True)
    for path in audio:
        codes = encode_file(processor, path)
        np.save(out / f"{path.stem}.npy", codes)
        log.info("%s -> %s %s", path, out / f"{path.stem}.npy", tuple(codes.shape))


def _check_distinct_stems(audio: list[Path]) -> None:
    """Refuse, before writing anything, two inputs that would write one NAME.npy (a.wav and a.flac, or
    x/a.wav and y/a.wav): the second would silently overwrite the first's codes."""
    from higgs_tune.data.samples import SampleError

    seen: dict[str, Path] = {}
    for path in audio:
        if path.stem in seen and seen[path.stem] != path:
            raise SampleError(
                str(path),
                f"would write {path.stem}.npy, as {seen[path.stem]} does; encode files with the same name "
                "into separate --out folders (or rename one)",
            )
        seen[path.stem] = path


PrepareWorkersOpt = Annotated[
    int | None, typer.Option(help="Audio-reading processes (default min(4, CPUs); 0 reads in-process).")
]
SkipBadOpt = Annotated[
    bool, typer.Option("--skip-bad", help="Skip bad samples (listed in OUT/skipped.jsonl), don't stop.")
]
CodecDeviceOpt = Annotated[
    str | None, typer.Option(help="Where the codec runs: cuda or cpu (default: cuda if any).")
]
CorpusLanguageOpt = Annotated[
    str | None,
    typer.Option(
        callback=language_option,
        help="The corpus's language (ar, arabic, ar-SA, ...): picks its recommended --text-normalisation "
        "(arabic_spoken for Arabic) when that is not given.",
    ),
]
NormalisationOpt = Annotated[
    TextNormalisation | None,
    typer.Option(
        # The choices are listed in the help: as the option's value they make a line wider than 80 columns.
        metavar="<name>",
        help=f"Normalise the transcripts: {', '.join(get_args(TextNormalisation))} "
        "(docs/text-normalisation.md); clones use the same. Default: the --language's recommended one, else "
        "none.",
    ),
]
HeldoutManifestOpt = Annotated[
    Path | None,
    typer.Option(
        help="The held-out (eval) manifest: refuse a training manifest that shares a speaker with it."
    ),
]


@app.command()
def prepare(
    manifest: Annotated[Path, typer.Argument(help="Manifest (ChatML JSON or JSON Lines).")],
    model: ModelOpt,
    out: Annotated[Path, typer.Option(help="Folder of the prepared dataset.")],
    workers: PrepareWorkersOpt = None,
    skip_bad: SkipBadOpt = False,
    shard_size: Annotated[int, typer.Option(help="Clips per shard file.")] = DEFAULT_SHARD_SIZE,
    min_seconds: Annotated[
        float, typer.Option(help="Shortest clip accepted (as in validate).")
    ] = MIN_SECONDS,
    max_seconds: Annotated[float, typer.Option(help="Longest clip accepted (as in validate).")] = MAX_SECONDS,
    device: CodecDeviceOpt = None,
    language: CorpusLanguageOpt = None,
    text_normalisation: NormalisationOpt = None,
    heldout_manifest: HeldoutManifestOpt = None,
) -> None:
    """Encode every distinct clip of a manifest once into a prepared dataset for training.

    Resumes an interrupted run. Under torchrun or accelerate launch the processes split the clips.
    """
    from higgs_tune.data.manifests import read_manifest
    from higgs_tune.data.pairs import check_heldout_speakers
    from higgs_tune.model.device import process_device
    from higgs_tune.model.loading import load_processor
    from higgs_tune.prepared.prepare import prepare_dataset, read_samples
    from higgs_tune.prepared.settings import PrepareSettings

    settings = PrepareSettings(
        workers=workers,
        skip_bad=skip_bad,
        shard_size=shard_size,
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        text_normalisation=text_normalisation or _recommended_normalisation(language),
    )
    samples, skipped = read_samples(manifest, skip_bad=skip_bad)
    if heldout_manifest is not None:
        heldout = read_manifest(heldout_manifest, require_target=False)
        check_heldout_speakers(samples, heldout, str(manifest), str(heldout_manifest))
    processor = load_processor(model, device=process_device(device))
    prepare_dataset(samples, processor, out, model, settings, skipped=skipped, source_dir=manifest.parent)


def _recommended_normalisation(language: str | None) -> TextNormalisation:
    """The text normalisation recommended for `--language` (none without one), said in the log."""
    from higgs_tune.data.text_normalisation import recommended_normalisation

    chosen = recommended_normalisation(language)
    if language is not None:
        log.info(
            "text normalisation %s, recommended for --language %s (give --text-normalisation to choose "
            "another)",
            chosen,
            language,
        )
    return chosen
