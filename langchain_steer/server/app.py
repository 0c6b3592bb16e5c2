"""``create_app(settings)``: the FastAPI application, its lifespan, error mapping and middleware.

Nothing runs at import. The lifespan loads the model and vectors once, opens the preference store, and puts
both on ``app.state.server`` (a :class:`ServerState`); at shutdown it closes the micro-batcher and the
store. Routes live in :mod:`langchain_steer.server.routes` and stay thin.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from langchain_steer.chat_model import SteeredChatModel
from langchain_steer.scheduler import QueueFullError
from langchain_steer.server.calibration import Calibrations
from langchain_steer.server.metrics import Metrics
from langchain_steer.server.protocol import RequestError, error_body
from langchain_steer.server.settings import ServerSettings
from langchain_steer.server.store import PreferenceStore

__all__ = ["ServerState", "create_app"]

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("langchain_steer.server.access")


@dataclass
class ServerState:
    """What the routes share: the settings, the one chat model, the store and the metrics."""

    settings: ServerSettings
    llm: SteeredChatModel
    store: PreferenceStore
    metrics: Metrics
    dimensions: list[str]
    calibrations: Calibrations


STATIC = Path(__file__).with_name("static")
"""The chat page's HTML, CSS and JavaScript."""


def _default_db() -> str:
    from langchain_steer.agent.persistence import default_database

    return str(default_database())


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the server's FastAPI app; the model loads when the app starts, not here.

    Run it with ``langchain-steer serve`` or any ASGI server, e.g.
    ``uvicorn.run(create_app(ServerSettings()), host="127.0.0.1", port=8000)``.
    """
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        llm = SteeredChatModel(
            model=settings.model,
            vectors=settings.vectors,
            device=settings.device,
            dtype=settings.dtype,
            max_batch_size=settings.max_batch_size,
            max_queue=settings.max_queue,
            queue_full="error",  # a full queue is a 429 with Retry-After, never a hang
            engine=settings.engine,  # type: ignore[arg-type]
            engine_args=dict(settings.engine_args),
        )
        # Loading takes seconds: keep the event loop free while it runs.
        await run_in_threadpool(llm.batcher)
        store = await run_in_threadpool(PreferenceStore, settings.db or _default_db())
        metrics = Metrics(llm)
        dimensions = llm.steering_dimensions()
        calibrations = Calibrations(llm, store.store, store.checkpointer, dimensions)
        app.state.server = ServerState(settings, llm, store, metrics, dimensions, calibrations)
        logger.info("Serving %s with dimensions %s", settings.model, app.state.server.dimensions)
        try:
            yield
        finally:
            # uvicorn has stopped accepting and waited (up to its graceful timeout) for requests in
            # flight; what is still running is cancelled by closing the batcher.
            await run_in_threadpool(llm.batcher().close, settings.shutdown_timeout)
            await run_in_threadpool(store.close)

    app = FastAPI(title="langchain-steer", lifespan=lifespan, docs_url=None, redoc_url=None)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    # The chat page (SELECT, CALIBRATE, LEARN): static files shipped with the package, no build step.
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.add_middleware(BodyLimit, limit=settings.limits.max_body_bytes)
    _add_handlers(app)

    @app.middleware("http")
    async def access_log(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        response = await call_next(request)
        seconds = time.perf_counter() - started
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        state = getattr(request.app.state, "server", None)
        if state is not None:
            state.metrics.observe(path, response.status_code, seconds)
        # Route, status and timing only: message text never reaches the log.
        access_logger.info(
            "%s %s %d %.3fs",
            request.method,
            path,
            response.status_code,
            seconds,
            extra={"method": request.method, "path": path, "status": response.status_code},
        )
        return response

    from langchain_steer.server.routes import router

    app.include_router(router)
    return app


def _add_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def request_error(request: Request, error: RequestError) -> JSONResponse:
        kind = "invalid_request_error" if error.status < 500 else "server_error"
        if error.status in (401, 403):
            kind = "authentication_error" if error.status == 401 else "permission_error"
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return JSONResponse(
            error_body(str(error), kind, error.param, error.code), error.status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {"msg": "invalid request", "loc": ()}
        where = [str(p) for p in first.get("loc", ()) if p != "body"]
        message = f"{'.'.join(where) + ': ' if where else ''}{first.get('msg', 'invalid request')}"
        param = ".".join(where) or None
        if first.get("type") == "json_invalid":
            message, param = "The request body is not valid JSON.", None
        return JSONResponse(error_body(message, "invalid_request_error", param), 400)

    @app.exception_handler(QueueFullError)
    async def busy(request: Request, error: QueueFullError) -> JSONResponse:
        return JSONResponse(
            error_body("The server is busy; retry shortly.", "rate_limit_error", code="queue_full"),
            429,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(str(error.detail), "invalid_request_error"), error.status_code
        )

    @app.exception_handler(Exception)
    async def crash(request: Request, error: Exception) -> JSONResponse:
        logger.exception("Unhandled error on %s", request.url.path)
        # Never the traceback: it can hold paths and request data.
        return JSONResponse(error_body("Internal server error.", "server_error"), 500)


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets a 413, whether or not it says its length."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._reject(send)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._reject(send)

    async def _reject(self, send: Any) -> None:
        response = JSONResponse(
            error_body(f"The request body is larger than {self.limit} bytes.", "invalid_request_error"),
            413,
        )
        async def nothing() -> Any:
            return {"type": "http.disconnect"}

        await response({"type": "http"}, nothing, send)


class _TooLarge(Exception):
    pass
