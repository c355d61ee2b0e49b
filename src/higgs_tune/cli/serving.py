"""`serve`: the model (or a fine-tune) behind an OpenAI-compatible speech API (`higgs_tune.serving`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from higgs_tune.cli.app import app
from higgs_tune.cli.options import (
    LENGTH_LIMIT,
    LONG_TEXT,
    SAMPLING,
    CheckpointOpt,
    ContextChunksOpt,
    GreedyOpt,
    LengthLimitOpt,
    MaxCharsPerChunkOpt,
    ModelOpt,
    RasWindowOpt,
    RunDeviceOpt,
    SeedOpt,
    TemperatureOpt,
    TopKOpt,
    TopPOpt,
    checkpoint_of,
    run_device,
    sampling_config,
)
from higgs_tune.inference.settings import LongTextSettings
from higgs_tune.serving.settings import API_KEY_ENV, ServeSettings

log = logging.getLogger("higgs_tune")
DEFAULTS = ServeSettings()


@app.command()
def serve(
    model: ModelOpt,
    adapter: Annotated[Path | None, typer.Option(help="Run or checkpoint folder (LoRA or full).")] = None,
    checkpoint: CheckpointOpt = "best",
    voices: Annotated[
        Path | None, typer.Option(help="Folder of NAME.wav (or .flac) + NAME.txt voices, encoded at start.")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback unless told).")] = DEFAULTS.host,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULTS.port,
    api_key: Annotated[
        str | None,
        typer.Option(envvar=API_KEY_ENV, show_default=False, help="Bearer key the /v1/ routes require."),
    ] = None,
    max_batch_size: Annotated[
        int, typer.Option(help="Requests generated together.")
    ] = DEFAULTS.max_batch_size,
    batch_wait_ms: Annotated[
        float, typer.Option(help="How long a batch waits for more requests.")
    ] = DEFAULTS.batch_wait_ms,
    max_queue: Annotated[int, typer.Option(help="Waiting requests beyond which 429.")] = DEFAULTS.max_queue,
    max_chars: Annotated[int, typer.Option(help="Longest input text.")] = DEFAULTS.max_chars,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body.")] = DEFAULTS.max_body_bytes,
    timeout_s: Annotated[float, typer.Option(help="Per-request time limit (504).")] = DEFAULTS.timeout_s,
    max_seconds: LengthLimitOpt = LENGTH_LIMIT.max_seconds,
    max_chars_per_chunk: MaxCharsPerChunkOpt = LONG_TEXT.max_chars_per_chunk,
    context_chunks: ContextChunksOpt = LONG_TEXT.context_chunks,
    greedy: GreedyOpt = SAMPLING.greedy,
    temperature: TemperatureOpt = SAMPLING.temperature,
    top_p: TopPOpt = SAMPLING.top_p,
    top_k: TopKOpt = SAMPLING.top_k,
    ras_window: RasWindowOpt = SAMPLING.ras_window,
    seed: SeedOpt = SAMPLING.seed,
    device: RunDeviceOpt = None,
) -> None:
    """Serve speech over HTTP: POST /v1/audio/speech (whole or streamed), voices, /health, /metrics."""
    settings = ServeSettings(
        host=host, port=port, api_key=api_key or None, max_batch_size=max_batch_size,
        batch_wait_ms=batch_wait_ms, max_queue=max_queue, max_chars=max_chars, max_body_bytes=max_body_bytes,
        timeout_s=timeout_s, max_seconds=max_seconds,
    )  # fmt: skip
    sampling = sampling_config(greedy, temperature, top_p, top_k, ras_window, seed)
    long_text = LongTextSettings(max_chars_per_chunk=max_chars_per_chunk, context_chunks=context_chunks)
    if voices is not None and not voices.is_dir():
        raise typer.BadParameter(f"{voices} is not a folder", param_hint="--voices")

    import uvicorn

    from higgs_tune.serving.app import create_app
    from higgs_tune.serving.engine import Engine

    engine = Engine(
        model, checkpoint_of(adapter, checkpoint), sampling, run_device(device), max_seconds, long_text
    )
    known = _voices(engine, voices)
    if settings.api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s without --api-key: anyone who reaches it can use it", host)
    log.info("serving %s on http://%s:%d (voices: %s)", model, host, port, ", ".join(known.names()) or "none")
    uvicorn.run(create_app(engine, known, settings), host=host, port=port, log_config=None)


def _voices(engine, folder: Path | None):
    """The voices of `--voices`, each encoded once, after checking the audio library writes every served
    format at the model's rate."""
    from higgs_tune.serving.audio_formats import check_formats
    from higgs_tune.serving.voices import Voices

    check_formats(engine.sample_rate)
    known = Voices(engine.encode_reference)
    if folder is not None:
        known.load_folder(folder)
    return known
