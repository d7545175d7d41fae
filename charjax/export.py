"""`charjax export`: a run's inference function with its weights, runnable without charjax.

* ``jaxexport``: `jax.export` serialised StableHLO with a symbolic batch dimension; reload it
  with JAX alone: ``jax.export.deserialize(bytearray(open(p, "rb").read())).call(x)``.
* ``onnx``: the same function converted by jax2onnx, for ONNX Runtime and other ONNX tools
  (``pip install charjax[onnx]`` and ``pip install --no-deps jax2onnx``: it pins an older
  orbax-checkpoint than charjax's).

Both take float32 [N, 48, 48, 1] in 0-1 (white ink on black, framed by
`charjax.framing.prepare`) and return logits [N, 62] over `charset.CLASSES`. The plain Flax
formulation of the model is exported (the same weights), so no custom kernel is baked in;
``FILE.json`` beside the export names the classes, the framing and the input convention.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import jax
import jax.numpy as jnp

from charjax import charset, files, inference, jsonio
from charjax.errors import CharjaxError, OutputError
from charjax.recognizer import Recognizer

FORMATS = ("jaxexport", "onnx")
INPUT = "float32 [N, 48, 48, 1], 0-1, white ink on black, framed by charjax.framing.prepare"


def inference_fn(predictor: inference.Predictor) -> Callable[[jax.Array], jax.Array]:
    """float32 images [N, 48, 48, 1] in 0-1 -> logits [N, 62], the weights closed over."""
    variables = jax.tree_util.tree_map(jnp.asarray, predictor.variables)

    def logits(images: jax.Array) -> jax.Array:
        return inference.run_model(predictor.model, variables, images)[0]

    return logits


def to_jax_export(predictor: inference.Predictor, platforms: tuple[str, ...] | None = None
                  ) -> bytes:
    """Serialised `jax.export.Exported` of the predictor's logits, batch size symbolic."""
    (batch,) = jax.export.symbolic_shape("n")
    spec = jax.ShapeDtypeStruct((batch, *charset.IMAGE_SHAPE), jnp.float32)
    exported = jax.export.export(jax.jit(inference_fn(predictor)), platforms=platforms)(spec)
    return bytes(exported.serialize())


def to_onnx(predictor: inference.Predictor) -> bytes:
    """The predictor's logits as an ONNX model (needs the `onnx` extra: jax2onnx)."""
    try:
        from jax2onnx import to_onnx as convert
    except ImportError:
        raise CharjaxError(
            "--format onnx needs jax2onnx and onnx: pip install 'charjax[onnx]' && "
            "pip install --no-deps 'jax2onnx>=0.17' (it pins an older orbax-checkpoint)"
        ) from None
    model = convert(inference_fn(predictor), inputs=[("N", *charset.IMAGE_SHAPE)],
                    model_name="charjax")
    return model.SerializeToString()


def export_run(
    workdir: str | os.PathLike, out: str | os.PathLike, fmt: str = "jaxexport",
    overwrite: bool = False,
) -> str:
    """Writes the run's best model to `out` (and `out`.json describing it); returns `out`.

    Existing files are never replaced unless `overwrite` (an OutputError, before any work).
    """
    if fmt not in FORMATS:
        raise CharjaxError(f"unknown export format {fmt!r}; choose one of {FORMATS}")
    out = os.fspath(out)
    if not overwrite:
        for path in (out, out + ".json"):
            if os.path.lexists(path):
                raise OutputError(f"{path}: already exists; pass --force (overwrite=True) to "
                                  "overwrite it, or pick another path")
    rec = Recognizer.load(workdir, impl="flax")  # plain Flax layers: no custom call exported
    blob = (to_jax_export if fmt == "jaxexport" else to_onnx)(rec.predictor)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    files.write_bytes(out, blob, overwrite=overwrite)
    info = {**rec.info(), "format": fmt, "input": INPUT, "output": "logits [N, 62]"}
    files.write_text(out + ".json", jsonio.dumps(info) + "\n", overwrite=overwrite)
    return out
