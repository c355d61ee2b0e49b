"""The routes of `higgs-tune serve` and the app that holds them (`create_app`).

`/v1/...` routes take the bearer key when the server has one; `/health` and `/metrics` do not (a load
balancer and Prometheus ask them), nor does the page at `/` (it asks for the key and sends it with its own
`/v1/` requests).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from higgs_tune.errors import UserError
from higgs_tune.serving.api_errors import ApiError
from higgs_tune.serving.batcher import Batcher
from higgs_tune.serving.engine import Engine
from higgs_tune.serving.limits import BodyLimit, RequireKey, install_error_handlers
from higgs_tune.serving.metrics import Metrics, MetricsMiddleware
from higgs_tune.serving.page import CONTENT_SECURITY_POLICY, page_html
from higgs_tune.serving.requests import SpeechRequest
from higgs_tune.serving.settings import ServeSettings
from higgs_tune.serving.speech import Server, speak
from higgs_tune.serving.voices import Voices


def create_app(engine: Engine, voices: Voices, settings: ServeSettings) -> FastAPI:
    """The server: its batcher thread starts here; its middleware counts every request (metrics) and
    refuses oversized bodies before any route reads them."""
    batcher = Batcher(engine, settings.max_batch_size, settings.batch_wait_ms, settings.max_queue)
    metrics = Metrics(batcher.depth, batcher.in_flight)
    batcher.on_batch = lambda size, _seconds: metrics.batch_size.observe(size)
    batcher.on_cancelled = metrics.cancelled_batches.inc
    server = Server(engine, voices, batcher, metrics, settings)
    app = FastAPI(title="higgs-tune serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = server
    install_error_handlers(app)
    _routes(app, server)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequireKey, api_key=settings.api_key)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _routes(app: FastAPI, server: Server) -> None:
    page = page_html(server.engine.sample_rate, server.settings.api_key is not None)

    @app.get("/")
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "queue_depth": server.batcher.depth(), "voices": len(server.voices.names())}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(server.metrics.text(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/audio/voices")
    async def list_voices() -> dict:
        return {"voices": server.voices.names()}

    @app.post("/v1/audio/voices")
    async def upload_voice(
        audio_sample: Annotated[UploadFile, File()],
        name: Annotated[str, Form()],
        ref_text: Annotated[str, Form()],
        consent: Annotated[str | None, Form()] = None,
    ) -> dict:
        clip = await audio_sample.read()
        try:
            voice = await run_in_threadpool(server.voices.add, name, clip, ref_text)
        except UserError as e:
            raise ApiError(400, str(e).splitlines()[0]) from None
        seconds = voice.codes.shape[1] / server.engine.frame_rate
        return {"success": True, "voice": {"name": voice.name, "consent": consent, "seconds": seconds}}

    @app.post("/v1/audio/speech")
    async def speech(request: Request, body: SpeechRequest) -> Response:
        return await speak(server, request, body)
