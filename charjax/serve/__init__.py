"""`charjax serve`: a local web page to draw or upload a character, and a JSON API.

    GET  /          the drawing page (canvas, live top-5, upload, the 48x48 input the model saw)
    POST /predict   an image (multipart field `file`, or a raw image/* body) or JSON
                    {"pixels": [[...]]} -> {"top": [{"char", "p"}, ...], "input_png", "warning"}
    GET  /health    {"status": "ok"}
    GET  /model     classes, model name, framing (and its guides), the run's test accuracy

Built on Starlette, run by uvicorn; see `charjax.serve.app` for the limits and errors.
"""

from charjax.serve.app import (
    MAX_BODY_BYTES,
    Limits,
    RequestInput,
    Stopped,
    create_app,
    read_input,
    run_server,
)

__all__ = ["MAX_BODY_BYTES", "Limits", "RequestInput", "Stopped", "create_app", "read_input",
           "run_server"]
