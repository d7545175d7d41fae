"""The ASGI app behind `charjax serve`, and the server around it.

Every request that cannot be answered gets a 4xx JSON body {"error": "..."} naming the
problem, and the server keeps running; only a bug is a 500, logged once. What one request
may cost is bounded whatever its bytes claim (`Limits`):

* its body: MAX_BODY_BYTES, checked on the declared length and while reading;
* its image: the pixel count is read from the file's header (a JPEG's after draft scaling)
  and refused above MAX_DECODE_PIXELS before anything is decoded (413); decoded images are
  box-reduced to DECODE_SIDE pixels on a side before framing; only common image formats
  are tried (IMAGE_FORMATS), and a PNG's text chunks inflate to MAX_PNG_TEXT_BYTES at most;
* a JSON pixel array: MAX_PIXELS_SIDE on a side, numbers only;
* at once: DECODE_SLOTS requests decode and frame at a time (the rest wait their turn),
  and the server takes MAX_CONNECTIONS connections (503 beyond).

`read_input` is the one place a request body becomes an image (multipart, raw image or
JSON pixels); an endpoint names the extra fields it takes. The model call is serialised by
the predictor's lock (charjax.inference), so concurrent requests are safe.
"""

from __future__ import annotations

import base64
import dataclasses
import errno
import io
import json
import logging
import math
import os
import signal
import socket
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from importlib import resources
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from charjax import imageio, inputs, recognizer
from charjax.errors import CharjaxError, DataError, ImageTooLarge
from charjax.serve import read_routes

MAX_BODY_BYTES = 4 * 1024 * 1024  # a character image is a few kB; a photo, a few MB
MAX_DECODE_PIXELS = 4096 * 4096  # decoded at most (64 MB as RGBA); a 12 MP photo fits
DECODE_SIDE = 1024  # decoded images are reduced to this on a side (framing needs no more)
MAX_PIXELS_SIDE = 2048  # {"pixels": ...} arrays larger than this on a side are refused
DECODE_SLOTS = max(1, min(4, os.cpu_count() or 1))  # requests decoding at once
MAX_CONNECTIONS = 64  # connections served at once; more get 503
MAX_PNG_TEXT_BYTES = 1024 * 1024  # PNG text chunks inflated per image (Pillow allows 64 MB)
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "PPM")  # JPEG covers MPO
DEFAULT_TOP_K = 5
JSON_HINT = ('{"pixels": [[...], ...]} (rows of integers 0-255, or of floats 0-1)')

_log = logging.getLogger("charjax.serve")


class BadRequest(Exception):
    """A request the API refuses: HTTP `status` and a message naming the problem."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Stopped(Exception):
    """The server was stopped by SIGINT or SIGTERM (a normal end, not an error)."""

    def __init__(self, signum: int):
        super().__init__(f"stopped ({signal.Signals(signum).name})")
        self.signum = signum


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may cost; see the module docstring."""

    body_bytes: int = MAX_BODY_BYTES
    decode_pixels: int = MAX_DECODE_PIXELS
    decode_side: int = DECODE_SIDE
    array_side: int = MAX_PIXELS_SIDE
    decode_slots: int = DECODE_SLOTS


@dataclasses.dataclass(frozen=True)
class RequestInput:
    """A request's image, as sent (file bytes, or JSON text still to parse), and its fields.

    `image()` does the expensive part (parsing, decoding) and is meant for a worker thread.
    """

    kind: str  # "file" or "json"
    data: bytes
    name: str
    fields: dict[str, Any]
    allowed: tuple[str, ...]
    limits: Limits

    def image(self) -> tuple[Image.Image | np.ndarray, dict[str, Any]]:
        """(the decoded image or checked pixel array, the request's fields)."""
        if self.kind == "json":
            return _pixels_from_json(self.data, self.allowed, self.limits.array_side)
        try:
            picture = imageio.open_picture(
                self.data, self.name, max_pixels=self.limits.decode_pixels,
                formats=IMAGE_FORMATS, max_side=self.limits.decode_side)
        except ImageTooLarge as e:
            raise BadRequest(413, str(e)) from None
        except DataError as e:
            raise BadRequest(400, str(e)) from None
        return picture, self.fields


def create_app(
    rec: recognizer.Recognizer,
    max_body_bytes: int = MAX_BODY_BYTES,
    limits: Limits | None = None,
) -> Starlette:
    """The page and the JSON API around one Recognizer."""
    limits = limits or Limits(body_bytes=max_body_bytes)
    # The multipart parser logs each malformed body it sees; the client's 400 says it.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    # PNG text chunks are read (and inflated) when an image is opened; Pillow allows 64 MB
    # of them per image, which a 40 KB upload can claim. A character image needs none.
    PngImagePlugin.MAX_TEXT_MEMORY = min(PngImagePlugin.MAX_TEXT_MEMORY, MAX_PNG_TEXT_BYTES)
    slots = threading.BoundedSemaphore(limits.decode_slots)
    page = resources.files("charjax.serve").joinpath("static", "index.html").read_text("utf-8")

    async def index(request: Request) -> Response:
        return HTMLResponse(page)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def model(request: Request) -> Response:
        return JSONResponse(rec.info())

    async def decoded(
        sent: RequestInput, respond: Callable[[Any, dict[str, Any]], dict[str, Any]]
    ) -> Response:
        """`respond(image, fields)` as JSON, run in a worker thread once the request holds a
        decoding slot: decoding and framing are what cost memory, so a few at a time."""

        def work() -> dict[str, Any]:
            with slots:
                image, fields = sent.image()
                return respond(image, fields)

        return JSONResponse(await run_in_threadpool(work))

    async def predict(request: Request) -> Response:
        query = request.query_params.get("top_k")
        top_k = DEFAULT_TOP_K if query is None else _top_k(query, text=True)
        sent = await read_input(request, limits, fields=("top_k",))

        def respond(image: Any, fields: dict[str, Any]) -> dict[str, Any]:
            k = _top_k(fields["top_k"], text=sent.kind == "file") if "top_k" in fields \
                else top_k
            return _answer(rec, image, k)

        return await decoded(sent, respond)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404:
            detail = f"no such page: {request.url.path} (try /, /predict, /health, /model)"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return _error(exc.status_code, detail)

    routes = [
        Route("/", _endpoint(index), methods=["GET"]),
        Route("/health", _endpoint(health), methods=["GET"]),
        Route("/model", _endpoint(model), methods=["GET"]),
        Route("/predict", _endpoint(predict), methods=["POST"]),
        *read_routes.routes(rec, limits, decoded, sys.modules[__name__]),  # words and lines
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.add_middleware(_OneLogPerBug)
    return app


def _endpoint(handler: Callable) -> Callable:
    """`handler` with a refused request (BadRequest) answered as its 4xx JSON error."""

    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except BadRequest as e:
            return _error(e.status, str(e))

    return wrapped


class _OneLogPerBug:
    """Anything else an endpoint raises is a bug: logged once here (Starlette's own error
    middleware would log it and re-raise it to the server, which logs it again) and
    answered 500. A client that hung up mid-body is no bug and gets no log."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except ClientDisconnect:
            return
        except Exception as e:
            _log.exception("error answering %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await _error(500, f"internal error ({type(e).__name__}); see the server's "
                                  "log")(scope, receive, send)


# ---------------------------------------------------------------------------- the server


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, or a CharjaxError saying why not in plain words (a busy
    port, an address this machine does not have, a port that needs root)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise CharjaxError(f"--port {port}: {host}:{port} is already in use (another "
                               "server?); stop it or pick another --port") from None
        if e.errno in (errno.EACCES, errno.EPERM):
            raise CharjaxError(f"--port {port}: permission denied (ports below 1024 need "
                               "root); pick a port above 1024, e.g. --port 8000") from None
        reason = e.strerror or str(e)
        raise CharjaxError(f"--host {host}: cannot listen there ({reason}); use an address "
                           "of this machine, e.g. 127.0.0.1 or 0.0.0.0") from None
    sock.set_inheritable(True)
    return sock


def _raise_stopped(signum: int, frame: Any) -> None:
    raise Stopped(signum)


def run_server(
    workdir: str | Sequence[str], host: str = "127.0.0.1", port: int = 8000,
    limits: Limits | None = None, vote: bool = False,
) -> None:
    """Serves the run (several: an ensemble, by mean probability or `vote`) until SIGINT or
    SIGTERM, which raise Stopped once the server has shut down. The port is taken before
    the model loads, so a busy one fails at once."""
    import uvicorn

    main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    if main_thread:
        for s in previous:
            signal.signal(s, _raise_stopped)
    try:
        sock = listen(host, port)
        try:
            rec = recognizer.Recognizer.load(workdir, vote=vote)
            rec.probabilities(np.zeros((1, 48, 48, 1), np.uint8))  # compile before a request
            shown = f"[{host}]" if ":" in host else host
            runs = " + ".join([workdir] if isinstance(workdir, str) else workdir)
            _log.info("serving %s (%s, %s framing) on http://%s:%d", runs,
                      rec.config.model.name, rec.framing, shown, port)
            config = uvicorn.Config(create_app(rec, limits=limits), log_level="warning",
                                    limit_concurrency=MAX_CONNECTIONS, lifespan="off")
            # uvicorn handles SIGINT/SIGTERM itself while serving, then re-raises the signal
            # to the handler above once it has shut down.
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            sock.close()
    finally:
        if main_thread:
            for s, handler in previous.items():
                signal.signal(s, handler)


# ---------------------------------------------------------------------------- helpers


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _top_k(value: Any, text: bool = False) -> int:
    """A valid top_k: from the query string or a multipart field (`text`), or a JSON
    field (which must be a JSON integer)."""
    number = value
    if text and isinstance(value, str):
        digits = value.strip()
        if digits.isascii() and digits.lstrip("+-").isdigit() and len(digits) <= 6:
            number = int(digits)
    try:
        return recognizer.check_top_k(number)
    except (ValueError, TypeError):
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise BadRequest(400, f"top_k must be an integer in 1..62, got {shown}") from None


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


async def read_input(request: Request, limits: Limits, fields: Iterable[str] = ()
                     ) -> RequestInput:
    """The image a request sends, in any of the three forms, still undecoded:

    * multipart/form-data with the image in field `file` (and `fields` as text fields);
    * a raw image body (image/*, or application/octet-stream);
    * application/json {"pixels": [[...]], FIELD: ...}.

    Refuses an unknown content type (415), a body over the limit (413) and a malformed or
    empty one (400) here; the JSON itself is parsed by `RequestInput.image`.
    """
    allowed = tuple(fields)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = kind.startswith("image/") or kind == "application/octet-stream"
    if kind not in ("multipart/form-data", "application/json") and not raw:
        raise BadRequest(415, f"unsupported content type {kind or '(none)'!r}: send an image "
                              "(multipart field 'file', or an image/* body) or JSON "
                              f"{JSON_HINT}")
    body = await _read_body(request, limits.body_bytes)
    if kind == "application/json":
        if not body.strip():
            raise BadRequest(400, f"the JSON body is empty: send {JSON_HINT}")
        return RequestInput("json", body, "pixels", {}, allowed, limits)
    form_fields: dict[str, Any] = {}
    if kind == "multipart/form-data":
        body, name, form_fields = await _file_from_multipart(request, body, limits.body_bytes,
                                                             allowed)
    else:
        name = "request body"
    if not body:
        raise BadRequest(400, f"{name} is empty: send the image's bytes")
    return RequestInput("file", body, name, form_fields, allowed, limits)


async def _file_from_multipart(
    request: Request, body: bytes, limit: int, allowed: tuple[str, ...]
) -> tuple[bytes, str, dict[str, str]]:
    async def stream() -> AsyncGenerator[bytes, None]:
        yield body
        yield b""

    parser = MultiPartParser(request.headers, stream(), max_files=1, max_fields=8,
                             max_part_size=limit)
    try:
        form = await parser.parse()
    except Exception as e:  # noqa: BLE001 - any parser failure on these bytes is the body's
        detail = getattr(e, "message", None) or type(e).__name__
        raise BadRequest(400, f"malformed multipart body ({detail}); send the image in a "
                              "field named 'file'") from None
    try:
        extra = sorted(k for k in form.keys() if k != "file" and k not in allowed)
        if extra:
            raise BadRequest(400, f"unknown multipart field {extra[0]!r}; send 'file'"
                             + "".join(f" and '{k}'" for k in allowed))
        fields: dict[str, str] = {}
        for key in allowed:
            value = form.get(key)
            if value is not None:
                if not isinstance(value, str):
                    raise BadRequest(400, f"multipart field {key!r} must be text, not a file")
                fields[key] = value
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise BadRequest(400, "multipart body has no file field named 'file' (a file "
                                  "part, with a filename)")
        data = await upload.read()
        return data, f"uploaded file {upload.filename or 'file'!r}", fields
    finally:
        await form.close()


def _reject_constant(token: str) -> None:
    raise BadRequest(400, f"JSON body holds {token}, which is not a number; send finite "
                          "numbers")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadRequest(400, f"JSON body has the key {key!r} twice; send it once")
        out[key] = value
    return out


_JSON_NAMES = {bool: "true/false", type(None): "null", str: "a string", dict: "an object",
               list: "a list"}


def _pixels_from_json(
    body: bytes, allowed: tuple[str, ...], max_side: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """({"pixels"} as a checked array, the other fields) from a JSON body, or BadRequest."""
    try:
        payload = json.loads(body, object_pairs_hook=_no_duplicates,
                             parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise BadRequest(400, "JSON body is not UTF-8 text") from None
    except RecursionError:
        raise BadRequest(400, f"JSON body is nested too deeply; send {JSON_HINT}") from None
    except ValueError as e:
        raise BadRequest(400, f"body is not valid JSON ({' '.join(str(e).split())[:200]})"
                         ) from None
    if not isinstance(payload, dict) or "pixels" not in payload:
        got = "an object without \"pixels\"" if isinstance(payload, dict) else \
            _JSON_NAMES.get(type(payload), "a number")
        raise BadRequest(400, f"JSON body must be an object {JSON_HINT}, got {got}")
    extra = sorted(k for k in payload if k != "pixels" and k not in allowed)
    if extra:
        raise BadRequest(400, f"unknown JSON key {extra[0]!r}; this endpoint takes "
                         + ", ".join(repr(k) for k in ("pixels", *allowed)))
    fields = {k: v for k, v in payload.items() if k != "pixels"}
    return _pixel_array(payload["pixels"], max_side), fields


def _pixel_array(rows: Any, max_side: int) -> np.ndarray:
    """JSON rows of numbers -> an array checked by `charjax.inputs.check_array` (integers
    0-255; when any value is fractional, floats 0-1), or BadRequest naming the problem."""
    if not isinstance(rows, list) or not rows:
        got = "an empty list" if rows == [] else _JSON_NAMES.get(type(rows), "a number")
        raise BadRequest(400, f'"pixels" must be a non-empty 2-D array (a list of rows of '
                              f"numbers), got {got}")
    if len(rows) > max_side:
        raise BadRequest(413, f'"pixels" has {len(rows)} rows; at most {max_side} on a side')
    kinds: set[type] = set()
    width = None
    for index, row in enumerate(rows):
        if not isinstance(row, list):
            raise BadRequest(400, f'"pixels" must be a 2-D array (a list of rows of numbers); '
                                  f"row {index} is {_JSON_NAMES.get(type(row), 'a number')}")
        if width is None:
            width = len(row)
            if width > max_side:
                raise BadRequest(413, f'"pixels" rows hold {width} values; at most {max_side} '
                                      "on a side")
        elif len(row) != width:
            raise BadRequest(400, f'"pixels" rows must all be the same length: row 0 has '
                                  f"{width} values, row {index} has {len(row)}")
        kinds.update(map(type, row))
    if not width:
        raise BadRequest(400, '"pixels" rows are empty: send at least one value per row')
    strange = kinds - {int, float}
    if strange:
        names = sorted(_JSON_NAMES.get(t, t.__name__) for t in strange)
        nested = list in strange
        raise BadRequest(400, f'"pixels" values must be numbers, found {", ".join(names)}'
                         + ("; send a 2-D array (rows of numbers), not a deeper one"
                            if nested else ""))
    try:
        array = np.array(rows, dtype=np.float64 if float in kinds else np.int64)
    except OverflowError:
        raise BadRequest(400, '"pixels" holds a number far out of range; send integers '
                              "0-255 (or floats 0-1)") from None
    if float in kinds and not np.isfinite(array).all():  # 1e999 parses as infinity
        raise BadRequest(400, '"pixels" holds a number too large to be finite; send integers '
                              "0-255 (or floats 0-1)")
    try:
        return inputs.check_array(array)
    except (DataError, TypeError) as e:
        raise BadRequest(400, f'"pixels": {e}') from None


def _answer(rec: recognizer.Recognizer, image: Any, top_k: int) -> dict[str, Any]:
    try:
        result = rec.recognize(image, top_k)[0]
    except (DataError, ValueError) as e:
        raise BadRequest(400, str(e)) from None
    if result.error:
        raise BadRequest(400, result.error)
    png = io.BytesIO()
    Image.fromarray(result.pixels[..., 0]).save(png, format="PNG")
    return {
        "top": [{"char": c, "p": p if math.isfinite(p) else 0.0} for c, p in result.top],
        "warning": result.warning,
        "input_png": "data:image/png;base64," + base64.b64encode(png.getvalue()).decode(),
    }
