"""`charjax export`: the exported model, reloaded with JAX alone, gives the checkpoint's logits."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

import charjax
from charjax import evaluate, export, inference

# Run in a fresh interpreter with only jax (and numpy) importable as far as the code goes:
# it must not import charjax or flax to run the exported model.
RELOAD = """
import sys, jax, numpy as np
x = np.load(sys.argv[2])
exp = jax.export.deserialize(bytearray(open(sys.argv[1], "rb").read()))
np.save(sys.argv[3], np.asarray(exp.call(x)))
assert not any(m.split(".")[0] in ("charjax", "flax", "optax") for m in sys.modules), "leak"
"""


@pytest.fixture(scope="module")
def inputs(trained_run):
    rec = charjax.Recognizer.load(trained_run[0])
    images = evaluate.load_eval_data("synthetic", rec.config, "test").images[:7]
    return rec, images


@pytest.fixture(scope="module")
def exports(trained_run, tmp_path_factory):
    """`charjax export` run as the program runs (cli.run_many, one process): into a folder
    it creates, over an existing file (refused), and over it again with --force."""
    from cli import run_many

    tmp = tmp_path_factory.mktemp("export")
    fresh, taken = tmp / "new" / "model.jaxexport", tmp / "taken" / "model.jaxexport"
    taken.parent.mkdir()
    taken.write_bytes(b"an earlier export")
    (taken.parent / "model.jaxexport.json").write_text("{}")
    base = ["export", "--workdir", str(trained_run[0]), "--out"]
    results = run_many({"fresh": [*base, str(fresh)], "refused": [*base, str(taken)],
                        "forced": [*base, str(taken), "--force"]})
    return results, fresh, taken


def test_jax_export_reloads_in_a_fresh_process_with_the_same_logits(exports, inputs, tmp_path):
    rec, images = inputs
    results, out, _ = exports
    assert results["fresh"].returncode == 0, results["fresh"].stderr
    meta = json.loads(out.with_name("model.jaxexport.json").read_text())
    assert meta["classes"] == "".join(rec.classes) and meta["framing"] == rec.framing
    want = rec.predictor.outputs(images)[0]
    for n in (7, 2):  # the batch dimension is symbolic
        np.save(tmp_path / "x.npy", images[:n].astype(np.float32) / 255)
        subprocess.run([sys.executable, "-c", RELOAD, str(out), str(tmp_path / "x.npy"),
                        str(tmp_path / "y.npy")], check=True, timeout=300)
        np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want[:n], atol=1e-5, rtol=0)


def test_an_existing_export_is_replaced_only_with_force(exports):
    from cli import assert_one_line_error

    results, fresh, taken = exports
    assert_one_line_error(results["refused"], f"--out {taken}: already exists", "--force")
    assert results["refused"].returncode == 2
    forced = results["forced"]
    assert forced.returncode == 0, forced.stderr
    assert taken.read_bytes() == fresh.read_bytes()  # the same model, in place of the old file
    assert json.loads(taken.with_name("model.jaxexport.json").read_text())["format"] == \
        "jaxexport"
    assert sorted(p.name for p in taken.parent.iterdir()) == ["model.jaxexport",
                                                              "model.jaxexport.json"]


def test_onnx_export_matches_onnxruntime(inputs, tmp_path):
    pytest.importorskip("jax2onnx", reason="ONNX export is optional: pip install -e '.[onnx]'")
    ort = pytest.importorskip("onnxruntime", reason="pip install -e '.[onnx]'")
    rec, images = inputs
    blob = export.to_onnx(inference.load(rec.workdir, impl="flax"))
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    got = session.run(None, {name: images.astype(np.float32) / 255})[0]
    np.testing.assert_allclose(got, rec.predictor.outputs(images)[0], atol=1e-5, rtol=0)


def test_unknown_format_is_one_line(trained_run, tmp_path):
    run = subprocess.run([sys.executable, "-m", "charjax", "export", "--workdir",
                          str(trained_run[0]), "--out", str(tmp_path / "m"), "--format", "tf"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "format" in run.stderr and "Traceback" not in run.stderr
