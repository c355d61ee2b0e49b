"""`POST /v1/audio/speech`: a request checked, queued, generated, and answered whole or streamed.

Everything refused is refused before the request is queued: a field OpenAI has that this server does not
honour (`speed` other than 1, `instructions`), a format not served, a text too long or holding a control
token, a reference that `clone` would refuse, a prompt too long for the model.

A text longer than `--max-chars-per-chunk` is spoken in chunks by `clone`'s own function
(`inference.long_text.clone_long_text`), as a job the batcher runs alone (`speak_long`): its answer says
how many chunks (`X-Higgs-Tune-Chunks`) and which of them the speech checks flagged (`X-Higgs-Tune-Flags`).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from higgs_tune.data.samples import SampleError
from higgs_tune.inference.long_text import AudioJoiner
from higgs_tune.serving.api_errors import ApiError
from higgs_tune.serving.audio_formats import encode_audio, pcm16, wav_stream_header
from higgs_tune.serving.batcher import Batcher
from higgs_tune.serving.engine import Engine, Job
from higgs_tune.serving.metrics import Metrics
from higgs_tune.serving.requests import CONTENT_TYPES, STREAM_FORMATS, SpeechRequest
from higgs_tune.serving.settings import ServeSettings
from higgs_tune.serving.streaming import StreamDecoder, thread_safe_queue
from higgs_tune.serving.voices import Voices, reference_bytes, text_problem


@dataclass
class Server:
    """What the routes share."""

    engine: Engine
    voices: Voices
    batcher: Batcher
    metrics: Metrics
    settings: ServeSettings


def check_request(req: SpeechRequest, max_chars: int) -> None:
    """Refuse (400) what this server does not do as asked, naming the field; nothing is silently ignored."""
    if req.speed is not None and req.speed != 1.0:
        raise ApiError(400, f"speed {req.speed:g} is not supported: this server speaks at speed 1.0", "speed")
    if req.instructions:
        raise ApiError(400, "instructions are not supported by this model: leave them out", "instructions")
    served = ", ".join(CONTENT_TYPES)
    if req.response_format not in CONTENT_TYPES:
        raise ApiError(
            400, f"response_format {req.response_format!r}: served are {served}", "response_format"
        )
    if req.stream_format is not None and req.response_format not in STREAM_FORMATS:
        raise ApiError(
            400,
            f"a stream is sent as pcm or wav, not {req.response_format}: set response_format",
            "response_format",
        )
    if len(req.input) > max_chars:
        raise ApiError(400, f"input is {len(req.input)} characters, over this server's {max_chars}", "input")
    problem = text_problem(req.input, "input")
    if problem is not None:
        raise ApiError(400, problem, "input")


async def reference(server: Server, req: SpeechRequest) -> tuple[str, object]:
    """(transcript, codes) of the reference: the request's own (`ref_audio` + `ref_text`) or a voice's."""
    if (req.ref_audio is None) != (req.ref_text is None):
        raise ApiError(400, "ref_audio and ref_text go together: send both, or a voice instead", "ref_audio")
    if req.ref_audio is not None:
        if req.voice_name():
            raise ApiError(400, "send either a voice or ref_audio with ref_text, not both", "voice")
        problem = text_problem(req.ref_text, "ref_text")
        if problem is not None:
            raise ApiError(400, problem, "ref_text")
        clip = reference_bytes(req.ref_audio)
        return req.ref_text, await run_in_threadpool(server.engine.encode_reference, clip, "ref_audio")
    if not req.voice_name():
        raise ApiError(
            400, "give a voice (GET /v1/audio/voices lists them) or ref_audio with ref_text", "voice"
        )
    voice = server.voices.get(req.voice_name())
    return voice.ref_text, voice.codes


async def speak(server: Server, request: Request, req: SpeechRequest) -> Response:
    """Answer one speech request, whole or as a stream."""
    check_request(req, server.settings.max_chars)
    ref_text, codes = await reference(server, req)
    job = Job({"ref_text": ref_text, "ref_codes": codes, "text": req.input}, server.engine.frame_limit)
    if server.engine.chunks(req.input) > 1:
        job.long = True
        return await speak_long(server, request, req, job)
    problem = server.engine.prompt_problem(job.item)
    if problem is not None:
        raise ApiError(400, problem.replace("--max-seconds", "the server's --max-seconds"), "input")
    if req.stream_format is not None:
        return stream(server, job, req)
    server.batcher.submit(job)
    timeout = server.settings.timeout_s
    deadline = asyncio.get_running_loop().time() + timeout
    result = await wait_for(job, request, timeout)
    if result.codes.shape[1] == 0:
        raise ApiError(500, "the model emitted its stream EOS at once: no audio")
    _count(server, job, result)
    left = deadline - asyncio.get_running_loop().time()
    try:
        audio = await asyncio.wait_for(run_in_threadpool(server.engine.decode, result.codes), max(left, 0.01))
    except TimeoutError:
        raise _late(timeout) from None
    body = await run_in_threadpool(encode_audio, audio, server.engine.sample_rate, req.response_format)
    headers = {"X-Stopped-By-Eos": str(result.stopped_by_eos).lower()}
    return Response(body, media_type=CONTENT_TYPES[req.response_format], headers=headers)


async def speak_long(server: Server, request: Request, req: SpeechRequest, job: Job) -> Response:
    """Answer a long text, spoken in chunks (a chunk's prompt too long for the model is a 400 naming it);
    the headers say how many chunks and which the speech checks flagged (e.g. `chunk 2: cut`)."""
    chunks = server.engine.chunks(req.input)
    if req.stream_format is not None:
        return stream(server, job, req, {"X-Higgs-Tune-Chunks": str(chunks)})
    server.batcher.submit(job)
    try:
        result = await wait_for(job, request, server.settings.timeout_s)
    except SampleError as e:
        raise ApiError(400, str(e).splitlines()[0], "input") from None
    if result.audio.size == 0:
        raise ApiError(500, "the model emitted its stream EOS at once in every chunk: no audio")
    _count(server, job, result)
    body = await run_in_threadpool(encode_audio, result.audio, server.engine.sample_rate, req.response_format)
    flagged = [f"chunk {i + 1}: {', '.join(f)}" for i, f in enumerate(result.chunk_flags) if f]
    headers = {
        "X-Stopped-By-Eos": str(result.stopped_by_eos).lower(),
        "X-Higgs-Tune-Chunks": str(len(result.chunks)),
        "X-Higgs-Tune-Flags": "; ".join(flagged) or "none",
    }
    return Response(body, media_type=CONTENT_TYPES[req.response_format], headers=headers)


def _count(server: Server, job: Job, result) -> None:
    server.metrics.audio_seconds.inc(result.codes.shape[1] / server.engine.frame_rate)
    if job.early:
        server.metrics.early_answers.inc()


async def wait_for(job: Job, request: Request, timeout: float):
    """The job's codes; cancels it when its client leaves, and answers 504 after `timeout` seconds."""
    future = asyncio.wrap_future(job.done)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        done, _ = await asyncio.wait({future}, timeout=min(0.2, max(left, 0)))
        if done:
            return future.result()
        if await request.is_disconnected():
            job.cancelled.set()
            raise ApiError(499, "the client closed the request")
        if left <= 0:
            job.cancelled.set()
            raise _late(timeout)


def _late(timeout: float) -> ApiError:
    return ApiError(
        504, f"no answer within the server's --timeout-s {timeout:g} s: retry, or shorten the text"
    )


def stream(server: Server, job: Job, req: SpeechRequest, headers: dict | None = None) -> StreamingResponse:
    """The audio as it is generated: raw bytes (`stream_format: audio`) or server-sent events. A long
    job sends each chunk when it is done, joined as the whole answer is (`AudioJoiner`)."""
    queue, emit = thread_safe_queue(asyncio.get_running_loop())
    if job.long:
        joiner = AudioJoiner(server.engine.crossfade)
        job.on_chunk = lambda _index, clone: emit(joiner.add(clone.audio))

        def finish(_result) -> None:
            emit(joiner.finish())
            emit(None)
    else:
        decoder = StreamDecoder(server.engine.processor, server.engine.decode, emit)
        job.on_frames = decoder.on_frames

        def finish(result) -> None:
            decoder.finish(result.codes)

    server.batcher.submit(job)
    chunks = _stream_chunks(server, job, finish, queue, emit)
    if req.stream_format == "sse":
        return StreamingResponse(_events(chunks), media_type="text/event-stream", headers=headers)
    first = wav_stream_header(server.engine.sample_rate) if req.response_format == "wav" else b""
    return StreamingResponse(
        _raw(first, chunks), media_type=CONTENT_TYPES[req.response_format], headers=headers
    )


async def _stream_chunks(
    server: Server, job: Job, finish_stream: Callable, queue, emit
) -> AsyncIterator[bytes]:
    """The stream's 16-bit PCM pieces; the job is cancelled if the stream stops early (client gone)."""

    async def finish() -> None:
        try:
            result = await asyncio.wrap_future(job.done)
            _count(server, job, result)
            await run_in_threadpool(finish_stream, result)
        except Exception:  # the batch failed (logged by the batcher): the stream ends here
            emit(None)

    finisher = asyncio.create_task(finish())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + server.settings.timeout_s
    try:
        while (piece := await asyncio.wait_for(queue.get(), max(deadline - loop.time(), 0))) is not None:
            if piece.size:
                yield pcm16(piece)
    except TimeoutError:
        pass  # the status was sent with the first bytes: the stream ends short
    finally:
        job.cancelled.set()
        finisher.cancel()


async def _raw(first: bytes, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in chunks:
        yield chunk


async def _events(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """OpenAI's speech events: `speech.audio.delta` with base64 audio, then `speech.audio.done`."""
    async for chunk in chunks:
        delta = {"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode("ascii")}
        yield f"data: {json.dumps(delta)}\n\n"
    yield f"data: {json.dumps({'type': 'speech.audio.done'})}\n\n"
