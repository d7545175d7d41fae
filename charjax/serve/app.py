"""The ASGI app behind `charjax serve`.

Every request that cannot be answered gets a 4xx JSON body {"error": "..."} naming the
problem, and the server keeps running. Bodies are limited to MAX_BODY_BYTES (checked on the
declared length and while reading). Preparation runs in worker threads; the model call is
serialised by the Recognizer's lock, so concurrent requests are safe.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import sys
from collections.abc import AsyncGenerator
from importlib import resources
from typing import Any

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from charjax import imageio, recognizer
from charjax.errors import DataError
from charjax.serve import read_routes

MAX_BODY_BYTES = 4 * 1024 * 1024  # a character image is a few kB; a photo, a few MB
MAX_PIXELS_SIDE = 2048  # {"pixels": ...} arrays larger than this on a side are refused
DEFAULT_TOP_K = 5

_log = logging.getLogger("charjax.serve")


class BadRequest(Exception):
    """A request the API refuses: HTTP `status` and a message naming the problem."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def create_app(rec: recognizer.Recognizer, max_body_bytes: int = MAX_BODY_BYTES) -> Starlette:
    """The page and the JSON API around one Recognizer."""
    page = resources.files("charjax.serve").joinpath("static", "index.html").read_text("utf-8")

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def model(request: Request) -> Response:
        return JSONResponse(rec.info())

    async def predict(request: Request) -> Response:
        try:
            top_k = _top_k(request.query_params.get("top_k"))
            image, top_k = await _read_image(request, max_body_bytes, top_k)
            return JSONResponse(await run_in_threadpool(_answer, rec, image, top_k))
        except BadRequest as e:
            return _error(e.status, str(e))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404:
            detail = f"no such page: {request.url.path} (try /, /predict, /health, /model)"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return _error(exc.status_code, detail)

    async def server_error(request: Request, exc: Exception) -> Response:
        _log.exception("error answering %s", request.url.path)
        return JSONResponse({"error": f"internal error ({type(exc).__name__})"}, status_code=500)

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/model", model, methods=["GET"]),
        Route("/predict", predict, methods=["POST"]),
        *read_routes.routes(rec, max_body_bytes, sys.modules[__name__]),  # words and lines
    ]
    return Starlette(
        routes=routes, exception_handlers={HTTPException: http_error, Exception: server_error}
    )


def run_server(workdir: str, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Loads the run and serves it until interrupted."""
    import uvicorn

    rec = recognizer.Recognizer.load(workdir)
    rec.logits(np.zeros((1, 48, 48, 1), np.uint8))  # compile before the first request
    _log.info("serving %s (%s, %s framing) on http://%s:%d", workdir, rec.config.model.name,
              rec.framing, host, port)
    uvicorn.run(create_app(rec), host=host, port=port, log_level="warning")


# ---------------------------------------------------------------------------- helpers


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _top_k(value: Any) -> int:
    if value is None:
        return DEFAULT_TOP_K
    try:
        return recognizer.check_top_k(int(value) if isinstance(value, str) else value)
    except ValueError:
        raise BadRequest(400, f"top_k must be an integer in 1..62, got {value!r}") from None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"request body of {int(declared):,} bytes is over the limit of "
                              f"{limit:,} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"request body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_image(request: Request, limit: int, top_k: int) -> tuple[Any, int]:
    """(a Pillow image or pixel array, top_k) from any of the three request forms."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("multipart/form-data", "application/json") and not kind.startswith("image/"):
        raise BadRequest(415, f"unsupported content type {kind or '(none)'!r}: send an image "
                              "(multipart field 'file', or an image/* body) or JSON "
                              '{"pixels": [[...]]}')
    body = await _read_body(request, limit)
    if kind == "application/json":
        return _pixels_from_json(body, top_k)
    if kind == "multipart/form-data":
        body, name = await _file_from_multipart(request, body, limit)
    else:
        name = "request body"
    if not body:
        raise BadRequest(400, f"{name} is empty: send the image's bytes")
    try:
        return imageio.open_picture(body, name), top_k
    except DataError as e:
        raise BadRequest(400, str(e)) from None


async def _file_from_multipart(request: Request, body: bytes, limit: int) -> tuple[bytes, str]:
    async def stream() -> AsyncGenerator[bytes, None]:
        yield body
        yield b""

    parser = MultiPartParser(request.headers, stream(), max_files=1, max_fields=8,
                             max_part_size=limit)
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise BadRequest(400, f"malformed multipart body: {e.message}") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise BadRequest(400, "multipart body has no file field named 'file'")
    data = await upload.read()
    return data, f"uploaded file {upload.filename or 'file'!r}"


def _pixels_from_json(body: bytes, top_k: int) -> tuple[np.ndarray, int]:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(400, f"body is not valid JSON ({e})") from None
    if not isinstance(payload, dict) or "pixels" not in payload:
        raise BadRequest(400, 'JSON body must be an object with "pixels": [[...], ...] (rows '
                              "of gray values 0-255, or 0-1)")
    if "top_k" in payload:
        top_k = _top_k(payload["top_k"])
    try:
        pixels = np.array(payload["pixels"], dtype=np.float64)
    except (ValueError, TypeError):
        raise BadRequest(400, '"pixels" must be rows of equal length holding numbers') from None
    if pixels.ndim != 2 or pixels.size == 0:
        raise BadRequest(400, f'"pixels" must be a non-empty 2-D array (rows of gray values), '
                              f"got shape {list(pixels.shape)}")
    if max(pixels.shape) > MAX_PIXELS_SIDE:
        raise BadRequest(413, f'"pixels" is {pixels.shape[1]}x{pixels.shape[0]}; at most '
                              f"{MAX_PIXELS_SIDE} on a side")
    if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > 255:
        raise BadRequest(400, '"pixels" values must be finite numbers in 0..255 (or 0..1)')
    return pixels.astype(np.float32), top_k


def _answer(rec: recognizer.Recognizer, image: Any, top_k: int) -> dict[str, Any]:
    try:
        result = rec.recognize(image, top_k)[0]
    except ValueError as e:
        raise BadRequest(400, str(e)) from None
    if result.error:
        raise BadRequest(400, result.error)
    png = io.BytesIO()
    Image.fromarray(result.pixels[..., 0]).save(png, format="PNG")
    return {
        "top": [{"char": c, "p": p} for c, p in result.top],
        "warning": result.warning,
        "input_png": "data:image/png;base64," + base64.b64encode(png.getvalue()).decode(),
    }
