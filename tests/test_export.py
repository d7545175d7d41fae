"""`charjax export`: the exported model, reloaded with JAX alone, gives the checkpoint's logits."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

import charjax
from charjax import evaluate, export

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


def test_jax_export_reloads_in_a_fresh_process_with_the_same_logits(trained_run, inputs,
                                                                    tmp_path):
    rec, images = inputs
    out = tmp_path / "model.jaxexport"
    run = subprocess.run([sys.executable, "-m", "charjax", "export", "--workdir",
                          str(trained_run[0]), "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    meta = json.loads((tmp_path / "model.jaxexport.json").read_text())
    assert meta["classes"] == "".join(rec.classes) and meta["framing"] == rec.framing
    want = rec.logits(images)
    for n in (7, 2):  # the batch dimension is symbolic
        np.save(tmp_path / "x.npy", images[:n].astype(np.float32) / 255)
        subprocess.run([sys.executable, "-c", RELOAD, str(out), str(tmp_path / "x.npy"),
                        str(tmp_path / "y.npy")], check=True, timeout=300)
        np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want[:n], atol=1e-5, rtol=0)


def test_an_existing_export_is_replaced_only_with_force(trained_run, tmp_path):
    from cli import assert_one_line_error, run_many

    out = tmp_path / "model.jaxexport"
    out.write_bytes(b"an earlier export")
    (tmp_path / "model.jaxexport.json").write_text("{}")
    argv = ["export", "--workdir", str(trained_run[0]), "--out", str(out)]
    results = run_many({"refused": argv, "forced": [*argv, "--force"]})
    assert_one_line_error(results["refused"], f"--out {out}: already exists", "--force")
    assert results["refused"].returncode == 2
    forced = results["forced"]
    assert forced.returncode == 0, forced.stderr
    assert out.read_bytes() != b"an earlier export"
    assert json.loads((tmp_path / "model.jaxexport.json").read_text())["format"] == "jaxexport"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.jaxexport",
                                                         "model.jaxexport.json"]


def test_onnx_export_matches_onnxruntime(inputs, tmp_path):
    pytest.importorskip("jax2onnx", reason="ONNX export is optional: pip install -e '.[onnx]'")
    ort = pytest.importorskip("onnxruntime", reason="pip install -e '.[onnx]'")
    rec, images = inputs
    flax_rec = charjax.Recognizer(export.plain_model(rec), rec.variables, rec.config)
    blob = export.to_onnx(flax_rec)
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    got = session.run(None, {name: images.astype(np.float32) / 255})[0]
    np.testing.assert_allclose(got, rec.logits(images), atol=1e-5, rtol=0)


def test_unknown_format_is_one_line(trained_run, tmp_path):
    run = subprocess.run([sys.executable, "-m", "charjax", "export", "--workdir",
                          str(trained_run[0]), "--out", str(tmp_path / "m"), "--format", "tf"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "format" in run.stderr and "Traceback" not in run.stderr
