"""The word page: `GET /read` (a wide canvas), `POST /read` and `POST /correct`.

`POST /read` takes the request forms of `POST /predict` (multipart field `file`, an image/*
body, or JSON {"pixels": [[...]]}); the answer is `Reading.to_dict()`: the text, the line's
baseline and cap height, and per character its box, top-k and why the line changed the
answer. `POST /correct` takes JSON {"pixels": the line, "box": [x0, y0, x1, y1], "char": "a"}
and saves that character, framed as the model's inputs are, as a labelled 48x48 PNG in
WORKDIR/corrections/ (the folder layout `charjax adapt` reads: `097_<n>.png`, case-safe) and
the raw crop under the same name in WORKDIR/corrections_raw/ (outside corrections/, whose
layout must stay flat); it answers the number of corrections saved. `POST /adapt` runs
`charjax adapt` on them into the first free WORKDIR-me, WORKDIR-me-2, ... and serves the
adapted weights from then on (corrections still go to WORKDIR, so the next adaptation starts
again from WORKDIR's weights with all of them).
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from importlib import resources
from typing import Any

import numpy as np
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from charjax import charset, files, recognizer
from charjax.errors import CharjaxError


def routes(rec: recognizer.Recognizer, limits: Any, decoded: Any, app: Any) -> list[Route]:
    """The reading routes around one Recognizer, mounted by charjax.serve.app, which passes
    its request limits, its `decoded` (decode in a bounded slot, answer as JSON) and itself
    as `app` (its request parsing and errors); corrections go to the run's folder
    (`rec.workdir`), and are refused when it has none."""

    page = resources.files("charjax.serve").joinpath("static", "read.html").read_text("utf-8")

    async def read_page(request: Request) -> Response:
        return HTMLResponse(page)

    async def correct(request: Request) -> Response:
        body = await app._read_body(request, limits.body_bytes)
        return JSONResponse(await run_in_threadpool(_save_correction, rec, body, app))

    adapting = threading.Lock()  # one adaptation at a time

    async def adapt(request: Request) -> Response:
        if not adapting.acquire(blocking=False):
            raise app.BadRequest(409, "an adaptation is running already")
        try:
            return JSONResponse(await run_in_threadpool(_adapt, rec, app))
        finally:
            adapting.release()

    async def read(request: Request) -> Response:
        query = request.query_params.get("top_k")
        top_k = 3 if query is None else app._top_k(query, text=True)
        sent = await app.read_input(request, limits, fields=("top_k",))

        def respond(image: Any, fields: dict[str, Any]) -> dict[str, Any]:
            k = app._top_k(fields["top_k"], text=sent.kind == "file") if "top_k" in fields \
                else top_k
            return _answer(rec, image, k, app)

        return await decoded(sent, respond)

    return [
        Route("/read", app._endpoint(read_page), methods=["GET"]),
        Route("/read", app._endpoint(read), methods=["POST"]),
        Route("/correct", app._endpoint(correct), methods=["POST"]),
        Route("/adapt", app._endpoint(adapt), methods=["POST"]),
    ]


def _answer(rec: recognizer.Recognizer, image: Any, top_k: int, app: Any) -> dict[str, Any]:
    try:
        return rec.read(image, top_k).to_dict()
    except ValueError as e:
        raise app.BadRequest(400, str(e)) from None


_COUNTER = itertools.count()


def corrections_count(folder: str) -> int:
    try:
        return sum(name.endswith(".png") for name in os.listdir(folder))
    except OSError:
        return 0


def _save_correction(rec: recognizer.Recognizer, body: bytes, app: Any) -> dict[str, Any]:
    from charjax.datasets import folder as folder_source

    workdir = getattr(rec, "workdir", None)
    if not workdir:
        raise app.BadRequest(409, "this server has no run folder to save corrections in")
    try:
        payload = json.loads(body)
        char, box = payload["char"], [int(v) for v in payload["box"]]
        line = np.array(payload["pixels"], dtype=np.float64)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise app.BadRequest(400, 'JSON body must be {"pixels": [[...]], "box": [x0, y0, x1, '
                                  'y1], "char": "a"}') from None
    if not isinstance(char, str) or len(char) != 1 or char not in charset.CLASSES:
        raise app.BadRequest(400, f"char must be one of 0-9, A-Z, a-z, got {char!r}")
    if line.ndim != 2 or max(line.shape) > app.MAX_PIXELS_SIDE or not np.isfinite(line).all():
        raise app.BadRequest(400, '"pixels" must be a 2-D array of gray values 0..255')
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 <= line.shape[1] and 0 <= y0 < y1 <= line.shape[0]):
        raise app.BadRequest(400, f"box {box} lies outside the {line.shape[1]}x{line.shape[0]} "
                                  "image")
    crop = np.clip(line[y0:y1, x0:x1], 0, 255).astype(np.uint8)
    framed = rec.prepare(crop).pixels[..., 0]
    folder = os.path.join(os.fspath(workdir), "corrections")
    raw = os.path.join(os.fspath(workdir), "corrections_raw")
    os.makedirs(folder, exist_ok=True)
    os.makedirs(raw, exist_ok=True)
    stem = f"{folder_source.label_token(char)}_{time.time_ns()}{next(_COUNTER):04d}"
    for path, pixels in ((os.path.join(folder, stem + ".png"), framed),
                         (os.path.join(raw, stem + ".png"), crop)):
        with files.atomic_path(path, suffix=".png") as tmp:
            Image.fromarray(pixels).save(tmp, format="PNG")
    return {"saved": stem + ".png", "count": corrections_count(folder)}


def _adapt(rec: recognizer.Recognizer, app: Any) -> dict[str, Any]:
    """Adapts the served run to its corrections and swaps the adapted weights in (same
    model, so nothing recompiles); answers where the adapted run is and what it scored."""
    from charjax import adapt, train

    workdir = getattr(rec, "workdir", None)
    if not workdir:
        raise app.BadRequest(409, "this server has no run folder to adapt")
    out = adapt.free_out_dir(workdir)
    try:
        result = adapt.adapt(workdir, out, train.train_and_evaluate)
    except CharjaxError as e:
        raise app.BadRequest(409, str(e)) from None
    adapted = recognizer.Recognizer.load(out)
    rec.predictor, rec.metrics = adapted.predictor, adapted.metrics
    return {"out": out, "corrections": result["corrections"],
            "test_accuracy": result["test_accuracy"], "seconds": result["seconds"]}
