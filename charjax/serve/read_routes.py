"""`POST /read`: the text of an image of a word or line (charjax/reading.py), as JSON.

The request forms are those of `POST /predict` (multipart field `file`, an image/* body, or
JSON {"pixels": [[...]]}); the answer is `Reading.to_dict()`: the text, the line's baseline
and cap height, and per character its box, top-k and why the line changed the answer.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from charjax import recognizer


def routes(rec: recognizer.Recognizer, max_body_bytes: int) -> list[Route]:
    """The reading routes around one Recognizer (mounted by charjax.serve.app)."""
    from charjax.serve import app

    async def read(request: Request) -> Response:
        try:
            top_k = app._top_k(request.query_params.get("top_k") or 3)
            image, top_k = await app._read_image(request, max_body_bytes, top_k)
            return JSONResponse(await run_in_threadpool(_answer, rec, image, top_k))
        except app.BadRequest as e:
            return app._error(e.status, str(e))

    return [Route("/read", read, methods=["POST"])]


def _answer(rec: recognizer.Recognizer, image: Any, top_k: int) -> dict[str, Any]:
    from charjax.serve import app

    try:
        return rec.read(image, top_k).to_dict()
    except ValueError as e:
        raise app.BadRequest(400, str(e)) from None
