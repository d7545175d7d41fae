"""The bad-input corpus: every input a user can get wrong ends in one line and a non-zero exit.

Each case runs the real command line in this process (`cli.run`, cheap: no interpreter or
JAX start-up per case) and checks the exit status, that the one error line names the
thing and says what to do, that no traceback is printed, and that the workdir holds
exactly what it held before. A few cases also run as real processes at the end.

Set CHARJAX_CORPUS_LOG=FILE to collect every case's message in FILE (id, then message).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from collections.abc import Callable

import jax
import numpy as np
import pytest
from conftest import ROOT, tiny_config, tiny_overrides
from PIL import Image

from charjax import charset, checkpoints, cli, run_folder, train
from charjax import workdir as workdir_lib

TRAIN = ["train", "--config", "configs/default.py"]


def snapshot(path: str) -> dict[str, tuple[int, int]] | None:
    """Every file under `path` with its size and mtime; None when `path` does not exist."""
    if not os.path.lexists(path):
        return None
    if not os.path.isdir(path):
        st = os.stat(path)
        return {".": (st.st_size, st.st_mtime_ns)}
    out = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            st = os.lstat(full)
            out[os.path.relpath(full, path)] = (st.st_size if name in files else 0,
                                                st.st_mtime_ns)
    return out


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    """(exit status, stderr) of `charjax ARGS`, run in this process."""
    capsys.readouterr()
    try:
        cli.run(["charjax", *args])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return code, capsys.readouterr().err


def glyph(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((24, 24), np.uint8)
    img[6:18, 6:18] = rng.integers(100, 256, (12, 12))
    return img


def save_png(path: str, seed: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(glyph(seed)).save(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, trained_run):
    """Bad files, folders and workdirs, built once for the whole corpus."""
    base = tmp_path_factory.mktemp("bad-inputs")
    p = {}
    seed = iter(range(10_000))
    # 5 images of each class: rounding leaves 0 validation images at val_fraction=0.1
    p["five"] = str(base / "five")
    for c in charset.CLASSES:
        for i in range(5):
            save_png(os.path.join(p["five"], f"label_{ord(c):03d}_{i}.png"), next(seed))
    # class sub-folders plus one stray image at the top
    p["mixed"] = str(base / "mixed")
    for c in "AB":
        for i in range(3):
            save_png(os.path.join(p["mixed"], c, f"{i}.png"), next(seed))
    save_png(os.path.join(p["mixed"], "stray.png"), next(seed))
    p["one_class"] = str(base / "one_class")
    for i in range(4):
        save_png(os.path.join(p["one_class"], f"A_{i}.png"), next(seed))
    p["empty"] = str(base / "empty")
    os.makedirs(p["empty"])
    p["euro"] = str(base / "euro")
    save_png(os.path.join(p["euro"], "A_1.png"), next(seed))
    save_png(os.path.join(p["euro"], "\u20ac_1.png"), next(seed))
    p["text_npz"] = str(base / "text.npz")
    with open(p["text_npz"], "w") as f:
        f.write("images,labels\n1,2\n")
    p["good_npz"] = str(base / "good.npz")
    np.savez(p["good_npz"], images=np.stack([glyph(s) for s in range(62)]),
             labels=np.arange(62))
    p["text_png"] = str(base / "text.png")
    with open(p["text_png"], "w") as f:
        f.write("not an image")
    p["zero_png"] = str(base / "zero.png")
    open(p["zero_png"], "w").close()
    p["file"] = str(base / "a-file")
    with open(p["file"], "w") as f:
        f.write("x")
    p["syntax_config"] = str(base / "syntax.py")
    with open(p["syntax_config"], "w") as f:
        f.write("def get_config(:\n")
    p["raising_config"] = str(base / "raising.py")
    with open(p["raising_config"], "w") as f:
        f.write("def get_config():\n    raise RuntimeError('no config today')\n")
    p["leftovers"] = str(base / "leftovers")
    os.makedirs(p["leftovers"])
    with open(os.path.join(p["leftovers"], "metrics.json"), "w") as f:
        f.write("{}")
    # a copy of the trained run with every step's weights destroyed
    run, _ = trained_run
    p["run"] = str(run)
    p["corrupt"] = str(base / "corrupt")
    shutil.copytree(run, p["corrupt"])
    for root, _, files in os.walk(os.path.join(p["corrupt"], "checkpoints")):
        if f"{os.sep}state" in root:
            for name in files:
                with open(os.path.join(root, name), "wb") as f:
                    f.write(b"garbage")
    # a run whose only checkpoint holds NaN weights (as an older charjax could keep)
    p["nan_run"] = str(base / "nan_run")
    config = tiny_config()
    state = train.create_train_state(config, jax.random.key(0))
    state = state.replace(params=jax.tree_util.tree_map(lambda x: x * np.nan, state.params))
    mngr = checkpoints.manager(p["nan_run"])
    checkpoints.save(mngr, 1, state, run_folder.resolved_config(config), [],
                     {"val_accuracy": 0.5, "val_loss": 1.0})
    mngr.wait_until_finished()
    mngr.close()
    p["busy"] = str(base / "busy")
    os.makedirs(p["busy"])
    # files a command would overwrite: each must survive unless --force
    p["existing"] = str(base / "existing.out")
    with open(p["existing"], "w") as f:
        f.write("the user's own file\n")
    p["sibling"] = str(base / "model.jaxexport")  # only its .json beside it exists
    with open(p["sibling"] + ".json", "w") as f:
        f.write("{}\n")
    p["shown"] = str(base / "shown")  # holds what --show would write for zero.png
    os.makedirs(p["shown"])
    with open(os.path.join(p["shown"], "0000_zero.png"), "wb") as f:
        f.write(b"an earlier answer")
    for name, text in (("bad_config_json", "{not json"), ("list_config_json", "[1, 2]")):
        p[name] = str(base / name)
        os.makedirs(p[name])
        with open(os.path.join(p[name], "config.json"), "w") as f:
            f.write(text)
    return p


@dataclasses.dataclass
class Case:
    id: str
    args: list[str]  # {wd} is a fresh path; other {names} are keys of the `inputs` fixture
    code: int
    says: tuple[str, ...]  # fragments the error line must hold: the thing and the fix
    watch: str = "{wd}"  # the workdir that must be left as it was
    setup: Callable | None = None  # (paths, monkeypatch) -> None, before the run
    not_says: tuple[str, ...] = ()  # fragments the error line must not hold (wrong advice)
    absent: str = ""  # a path that must not exist afterwards (what a refused run never wrote)


def tr(*flags: str, wd: str = "{wd}", **tiny) -> list[str]:
    """`charjax train` on the tiny config with extra flags."""
    return [*TRAIN, "--workdir", wd, *tiny_overrides(**tiny), *flags]


def _hold_lock(p, monkeypatch):
    lock = workdir_lib.acquire(p["busy"])
    monkeypatch.setattr(sys.modules[__name__], "_held", lock, raising=False)


def _read_only(p, monkeypatch):
    real = os.access
    monkeypatch.setattr(workdir_lib.os, "access",
                        lambda path, mode: False if "ro-" in str(path) else real(path, mode))
    os.makedirs(p["wd"] + "-ro-dir", exist_ok=True)


def _busy_port(p, monkeypatch):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    p["port"] = str(sock.getsockname()[1])
    monkeypatch.setattr(sys.modules[__name__], "_held", sock, raising=False)


def _free_port(p, monkeypatch):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        p["port"] = str(sock.getsockname()[1])


def _no_model_load(p, monkeypatch):
    from charjax import recognizer

    def fail(*a, **k):
        raise AssertionError("the path must be checked before the model is loaded")

    monkeypatch.setattr(recognizer.Recognizer, "load", fail)


def _no_evaluation(p, monkeypatch):
    def fail(*a, **k):
        raise AssertionError("the output path must be checked before the evaluation")

    monkeypatch.setattr(checkpoints, "load_for_inference", fail)


CASES = [
    # ---------------------------------------------------------------- config values
    Case("batch_size_zero", tr("--config.batch_size=0"), 1, ("--config.batch_size=0", ">= 1")),
    Case("batch_size_negative", tr("--config.batch_size=-5"), 1,
         ("--config.batch_size=-5", "e.g. --config.batch_size=")),
    Case("eval_batch_size_zero", tr("--config.eval_batch_size=0"), 1,
         ("--config.eval_batch_size=0", ">= 1")),
    Case("num_epochs_zero", tr("--config.num_epochs=0"), 1, ("--config.num_epochs=0", ">= 1")),
    Case("learning_rate_zero", tr("--config.learning_rate=0.0"), 1,
         ("--config.learning_rate=0.0", "(0, inf)")),
    Case("learning_rate_negative", tr("--config.learning_rate=-0.001"), 1,
         ("--config.learning_rate=-0.001", "e.g. --config.learning_rate=")),
    Case("learning_rate_nan", tr("--config.learning_rate=nan"), 1,
         ("--config.learning_rate=nan", "finite")),
    Case("learning_rate_inf", tr("--config.learning_rate=inf"), 1,
         ("--config.learning_rate=inf", "finite")),
    Case("model_name_unknown", tr("--config.model.name=resnet"), 1,
         ("--config.model.name='resnet'", "tutorial", "compact_vgg")),
    Case("model_impl_unknown", tr("--config.model.impl=turbo"), 1,
         ("--config.model.impl='turbo'", "auto, onednn, fast, flax")),
    Case("model_dropout_one", tr("--config.model.tutorial.dropout=1.0"), 1,
         ("--config.model.tutorial.dropout=1.0", "[0, 1)")),
    Case("model_hidden_zero", tr("--config.model.name=3", "--config.model.compact_vgg.hidden=0"), 1,
         ("--config.model.compact_vgg.hidden=0", ">= 1")),
    Case("split_count_alone", tr("--config.data.val_count=10"), 1,
         ("--config.data.val_count=10", "set both")),
    Case("split_counts_too_many", tr("--config.data.val_count=300",
                                     "--config.data.test_count=300"), 1,
         ("--config.data.val_count=300", "training image")),
    Case("precision_unknown", tr("--config.precision=fp16"), 1,
         ("--config.precision='fp16'", "float32, bf16")),
    Case("optimizer_unknown", tr("--config.optimizer.name=sgd"), 1,
         ("--config.optimizer.name='sgd'", "adam, adamw")),
    Case("schedule_unknown", tr("--config.optimizer.schedule=linear"), 1,
         ("--config.optimizer.schedule='linear'", "constant, cosine, onecycle")),
    Case("warmup_negative", tr("--config.optimizer.warmup_epochs=-1.0"), 1,
         ("--config.optimizer.warmup_epochs=-1.0",)),
    Case("framing_unknown", tr("--config.data.framing=box"), 1,
         ("--config.data.framing='box'", "line, fit")),
    Case("synthetic_too_few", tr("--config.data.synthetic.num_images=10"), 1,
         ("--config.data.synthetic.num_images=10", ">= 62")),
    Case("val_fraction_above_one", tr("--config.data.val_fraction=1.5"), 1,
         ("--config.data.val_fraction=1.5", "(0, 1)")),
    Case("val_fraction_negative", tr("--config.data.val_fraction=-0.1"), 1,
         ("--config.data.val_fraction=-0.1", "(0, 1)")),
    Case("val_fraction_zero", tr("--config.data.val_fraction=0.0"), 1,
         ("--config.data.val_fraction=0.0", "validation split")),
    Case("test_fraction_one", tr("--config.data.test_fraction=1.0"), 1,
         ("--config.data.test_fraction=1.0", "(0, 1)")),
    Case("fractions_sum_to_one", tr("--config.data.val_fraction=0.6",
                                    "--config.data.test_fraction=0.5"), 1,
         ("val_fraction=0.6", "test_fraction=0.5", "sum to less than 1")),
    Case("label_smoothing_one", tr("--config.label_smoothing=1.0"), 1,
         ("--config.label_smoothing=1.0", "[0, 1)")),
    Case("ema_decay_above_one", tr("--config.ema_decay=1.5"), 1, ("--config.ema_decay=1.5",)),
    Case("augment_prob_two", tr("--config.augment.prob=2.0"), 1,
         ("--config.augment.prob=2.0", "[0, 1]")),
    Case("augment_zoom_reversed", tr("--config.augment.zoom_range=(1.1, 0.9)"), 1,
         ("--config.augment.zoom_range=(1.1, 0.9)", "low <= high")),
    Case("progress_unknown", tr("--config.report.progress=fancy"), 1,
         ("--config.report.progress='fancy'", "auto, bar, plain, off")),
    Case("keep_best_zero", tr("--config.keep_best=0"), 1, ("--config.keep_best=0", ">= 1")),
    Case("ensemble_members_zero", tr("--config.ensemble_members=0"), 1,
         ("--config.ensemble_members=0", ">= 1")),
    Case("source_unknown", tr("--config.data.source=mnist-please"), 1,
         ("--config.data.source='mnist-please'", "synthetic, npz:PATH")),
    Case("source_without_path", tr("--config.data.source=npz:"), 1,
         ("--config.data.source='npz:'", "npz:PATH")),
    Case("train_mix_unknown", tr("--config.data.train_mix=emnist"), 1,
         ("--config.data.train_mix='emnist'", "synthetic, npz:PATH")),
    Case("field_typo", tr("--config.batch_sze=64"), 2, ("batch_sze", 'Did you mean "batch_size"')),
    Case("field_wrong_type", tr("--config.batch_size=abc"), 2, ("batch_size", "abc")),
    # ---------------------------------------------------------------- data
    Case("batch_larger_than_train", tr("--config.batch_size=4096"), 1,
         ("--config.batch_size=4096", "training images", "use at most")),
    Case("five_per_class_no_validation", tr("--config.data.source=folder:{five}",
                                            "--config.data.val_fraction=0.1",
                                            "--config.data.test_fraction=0.1"), 1,
         ("--config.data.val_fraction=0.1", "0 validation and 0 test images",
          "raise --config.data.val_fraction to 0.11 and --config.data.test_fraction to 0.11")),
    Case("folder_mixed_layout", tr("--config.data.source=folder:{mixed}"), 1,
         ("mixed layout", "stray.png", "skip_bad")),
    Case("folder_one_class", tr("--config.data.source=folder:{one_class}"), 1,
         ("1 class(es)", "at least 2")),
    Case("folder_empty", tr("--config.data.source=folder:{empty}"), 1, ("empty", "A_0001.png")),
    Case("folder_missing", tr("--config.data.source=folder:/no/such/folder"), 1,
         ("/no/such/folder", "no such folder")),
    Case("folder_label_outside_charset", tr("--config.data.source=folder:{euro}"), 1,
         ("\u20ac_1", "does not start with a label", "skip_bad")),
    Case("npz_is_text", tr("--config.data.source=npz:{text_npz}"), 1,
         ("text.npz", "is a text file", "np.savez")),
    Case("npz_missing", tr("--config.data.source=npz:/no/such.npz"), 1,
         ("/no/such.npz", "no such file")),
    # ---------------------------------------------------------------- workdir
    Case("workdir_is_a_file", tr(wd="{file}"), 1, ("is a file", "new folder"), watch="{file}"),
    Case("workdir_parent_is_a_file", tr(wd="{file}/run"), 1, ("is a file",), watch="{file}"),
    Case("workdir_not_writable", tr(wd="{wd}-ro-dir"), 1, ("not writable", "permissions"),
         watch="{wd}-ro-dir", setup=_read_only),
    Case("workdir_busy", tr(wd="{busy}"), 1, ("in use by another `charjax train`",
                                              f"pid {os.getpid()}", "another --workdir"),
         watch="{busy}", setup=_hold_lock),
    Case("workdir_other_config", tr("--config.learning_rate=0.5", wd="{run}", num_epochs=2), 1,
         ("another config", "learning_rate: 0.002 -> 0.5", "new --workdir"), watch="{run}"),
    Case("workdir_leftover_metrics", tr(wd="{leftovers}"), 1,
         ("metrics.json", "new --workdir"), watch="{leftovers}"),
    Case("ensemble_into_single_run", tr("--config.ensemble_members=2", wd="{run}"), 1,
         ("holds a single run", "new --workdir"), watch="{run}"),
    # ---------------------------------------------------------------- checkpoints
    Case("init_from_missing", tr("--config.init_from=/no/such/run"), 1,
         ("--config.init_from='/no/such/run'", "holds no checkpoints")),
    Case("init_from_itself", tr("--config.init_from={run}", wd="{run}", num_epochs=2), 1,
         ("own --workdir",), watch="{run}"),
    Case("resume_corrupt_checkpoint", tr(wd="{corrupt}", num_epochs=3), 1,
         ("cannot be restored", "delete that step's folder"), watch="{corrupt}"),
    Case("eval_corrupt_checkpoint", ["eval", "--workdir", "{corrupt}", "--dataset", "synthetic"],
         1, ("cannot be restored", "retrain"), watch="{corrupt}"),
    Case("eval_nan_checkpoint", ["eval", "--workdir", "{nan_run}", "--dataset", "synthetic"], 1,
         ("NaN", "lower --config.learning_rate"), watch="{nan_run}"),
    Case("eval_no_checkpoints", ["eval", "--workdir", "{wd}", "--dataset", "synthetic"], 1,
         ("no checkpoints here", "charjax train")),
    Case("eval_workdir_is_a_file", ["eval", "--workdir", "{file}", "--dataset", "synthetic"], 1,
         ("no checkpoints here",), watch="{file}"),
    # ---------------------------------------------------------------- images
    Case("predict_missing_image", ["predict", "--workdir", "{run}", "/no/such.png"], 1,
         ("/no/such.png", "no such file"), watch="{run}"),
    Case("predict_text_as_png", ["predict", "--workdir", "{run}", "{text_png}"], 1,
         ("text.png",), watch="{run}"),
    Case("predict_zero_bytes", ["predict", "--workdir", "{run}", "{zero_png}"], 1,
         ("zero.png",), watch="{run}"),
    Case("predict_top_k_zero", ["predict", "--workdir", "{run}", "--top_k", "0", "{zero_png}"],
         2, ("--top_k", "1..62"), watch="{run}"),
    Case("predict_json_missing_folder", ["predict", "--workdir", "{run}", "--json",
                                         "/no/such/dir/p.json", "{zero_png}"], 2,
         ("/no/such/dir", "does not exist"), watch="{run}"),
    Case("predict_no_images", ["predict", "--workdir", "{run}"], 2,
         ("at least one image",), watch="{run}"),
    # ---------------------------------------------------------------- command line
    Case("unknown_command", ["fly"], 2, ("unknown command 'fly'", "train")),
    Case("train_without_config", ["train", "--workdir", "{wd}"], 2,
         ("--config is required", "usage: charjax train --config CONFIG --workdir")),
    Case("eval_without_dataset", ["eval", "--workdir", "{run}"], 2,
         ("--dataset is required", "usage: charjax eval"), watch="{run}"),
    Case("config_file_missing", ["train", "--config", "configs/nope.py", "--workdir", "{wd}"], 2,
         ("configs/nope.py", "no such file")),
    Case("config_file_syntax_error", ["train", "--config", "{syntax_config}", "--workdir", "{wd}"],
         2, ("syntax.py", "SyntaxError", "fix the file")),
    Case("config_file_raises", ["train", "--config", "{raising_config}", "--workdir", "{wd}"], 2,
         ("raising.py", "no config today")),
    Case("train_stray_argument", [*tr(), "extra"], 2, ("unexpected arguments", "extra")),
    Case("eval_split_bogus", ["eval", "--workdir", "{run}", "--dataset", "synthetic",
                              "--split", "bogus"], 2,
         ("--split=bogus", "auto|all|train|validation|test"), watch="{run}"),
    Case("eval_json_missing_folder", ["eval", "--workdir", "{run}", "--dataset", "synthetic",
                                      "--json", "/no/such/dir/out.json"], 2,
         ("/no/such/dir", "does not exist", "create it"), watch="{run}", setup=_no_evaluation),
    Case("eval_json_is_a_folder", ["eval", "--workdir", "{run}", "--dataset", "synthetic",
                                   "--json", "{empty}"], 2, ("is a folder", "out.json"),
         watch="{run}", setup=_no_evaluation),
    Case("eval_dataset_unknown", ["eval", "--workdir", "{run}", "--dataset", "mnist-please"], 1,
         ("'mnist-please'", "synthetic, npz:PATH"), watch="{run}"),
    Case("data_without_subcommand", ["data", "--dataset", "npz:{good_npz}", "--out", "{wd}"], 2,
         ("export", "preview")),
    Case("data_preview_n_zero", ["data", "preview", "--dataset", "npz:{good_npz}", "--out",
                                 "{wd}.png", "--n", "0"], 2, ("--n", "at least 1"),
         watch="{wd}.png"),
    # ---------------------------------------------------------------- every command's flags
    Case("serve_without_workdir", ["serve"], 2,
         ("--workdir is required", "usage: charjax serve --workdir DIR")),
    Case("export_without_out", ["export", "--workdir", "{run}"], 2,
         ("--out is required", "usage: charjax export --workdir DIR --out FILE"), watch="{run}"),
    Case("export_without_workdir", ["export", "--out", "{wd}.jaxexport"], 2,
         ("--workdir is required",), watch="{wd}.jaxexport"),
    Case("predict_without_workdir", ["predict", "{zero_png}"], 2,
         ("--workdir is required", "usage: charjax predict")),
    Case("data_without_dataset", ["data", "preview", "--out", "{wd}.png"], 2,
         ("--dataset is required", "usage: charjax data export"), watch="{wd}.png"),
    Case("export_format_unknown", ["export", "--workdir", "{run}", "--out", "{wd}.m",
                                   "--format", "tflite"], 2, ("--format", "jaxexport|onnx"),
         watch="{wd}.m"),
    Case("export_stray_argument", ["export", "--workdir", "{run}", "--out", "{wd}.m", "extra"],
         2, ("unexpected arguments", "extra"), watch="{wd}.m"),
    Case("serve_stray_argument", ["serve", "--workdir", "{run}", "extra"], 2,
         ("unexpected arguments", "extra"), watch="{run}"),
    Case("serve_port_zero", ["serve", "--workdir", "{run}", "--port", "0"], 2,
         ("--port must be in 1..65535",), watch="{run}"),
    Case("predict_top_k_huge", ["predict", "--workdir", "{run}", "--top_k", "100", "{zero_png}"],
         2, ("--top_k", "1..62"), watch="{run}"),
    # ---------------------------------------------------------------- serve
    Case("serve_port_busy", ["serve", "--workdir", "{run}", "--port", "{port}"], 1,
         ("--port {port}", "already in use", "another --port"), watch="{run}",
         setup=_busy_port, not_says=("serving on",)),
    Case("serve_host_not_here", ["serve", "--workdir", "{run}", "--host", "192.0.2.1",
                                 "--port", "{port}"], 1,
         ("--host 192.0.2.1", "cannot listen there", "127.0.0.1"), watch="{run}",
         setup=_free_port),
    Case("serve_workdir_missing", ["serve", "--workdir", "{wd}", "--port", "{port}"], 1,
         ("no checkpoints here", "charjax train"), setup=_free_port),
    # ---------------------------------------------------------------- outputs never destroy
    Case("export_out_exists", ["export", "--workdir", "{run}", "--out", "{existing}"], 2,
         ("--out {existing}", "already exists", "--force"), watch="{existing}",
         setup=_no_model_load),
    Case("export_json_beside_exists", ["export", "--workdir", "{run}", "--out", "{sibling}"], 2,
         ("{sibling}.json", "already exists", "--force"), watch="{sibling}.json",
         setup=_no_model_load, absent="{sibling}"),
    Case("export_out_is_a_folder", ["export", "--workdir", "{run}", "--out", "{empty}"], 2,
         ("is a folder", "model.jaxexport"), watch="{empty}", setup=_no_model_load),
    Case("export_out_under_a_file", ["export", "--workdir", "{run}", "--out",
                                     "{file}/m.jaxexport"], 2,
         ("cannot be created under a file", "{file} is a file"), watch="{file}",
         setup=_no_model_load),
    Case("export_folder_under_a_file", ["export", "--workdir", "{run}", "--out",
                                        "{file}/new/m.jaxexport"], 2,
         ("cannot be created under a file",), watch="{file}", setup=_no_model_load),
    Case("export_workdir_missing", ["export", "--workdir", "{wd}", "--out", "{wd}.jaxexport"], 1,
         ("no checkpoints here",), absent="{wd}.jaxexport"),
    Case("predict_show_is_a_file", ["predict", "--workdir", "{run}", "--show", "{file}",
                                    "{zero_png}"], 2,
         ("--show {file}", "is a file", "name a folder"), watch="{file}", setup=_no_model_load,
         not_says=("File exists", "permissions")),
    Case("predict_show_under_a_file", ["predict", "--workdir", "{run}", "--show",
                                       "{file}/seen", "{zero_png}"], 2,
         ("cannot be created under a file", "{file} is a file"), watch="{file}",
         setup=_no_model_load),
    Case("predict_show_would_overwrite", ["predict", "--workdir", "{run}", "--show", "{shown}",
                                          "{zero_png}"], 2,
         ("already holds 0000_zero.png", "--force"), watch="{shown}", setup=_no_model_load),
    Case("predict_json_exists", ["predict", "--workdir", "{run}", "--json", "{existing}",
                                 "{zero_png}"], 2, ("--json {existing}", "already exists",
                                                    "--force"),
         watch="{existing}", setup=_no_model_load),
    Case("predict_json_is_a_folder", ["predict", "--workdir", "{run}", "--json", "{empty}",
                                      "{zero_png}"], 2, ("is a folder",), watch="{empty}",
         setup=_no_model_load),
    Case("predict_json_under_a_file", ["predict", "--workdir", "{run}", "--json",
                                       "{file}/p.json", "{zero_png}"], 2,
         ("cannot be created under a file",), watch="{file}", setup=_no_model_load),
    Case("eval_json_exists", ["eval", "--workdir", "{run}", "--dataset", "synthetic", "--json",
                              "{existing}"], 2, ("already exists", "--force"),
         watch="{existing}", setup=_no_evaluation),
    Case("eval_json_under_a_file", ["eval", "--workdir", "{run}", "--dataset", "synthetic",
                                    "--json", "{file}/e.json"], 2,
         ("cannot be created under a file",), watch="{file}", setup=_no_evaluation),
    Case("data_preview_out_exists", ["data", "preview", "--dataset", "npz:{good_npz}", "--out",
                                     "{existing}"], 2, ("already exists", "--force"),
         watch="{existing}"),
    Case("data_preview_out_is_a_folder", ["data", "preview", "--dataset", "npz:{good_npz}",
                                          "--out", "{empty}"], 2, ("is a folder", "grid.png"),
         watch="{empty}"),
    # ---------------------------------------------------------------- advice that works
    Case("eval_folder_bad_name", ["eval", "--workdir", "{run}", "--dataset", "folder:{euro}"],
         1, ("\u20ac_1", "pass --skip_bad"), watch="{euro}",
         not_says=("--config.data.skip_bad", "WORKDIR")),
    Case("eval_folder_mixed_layout", ["eval", "--workdir", "{run}", "--dataset",
                                      "folder:{mixed}"], 1, ("mixed layout", "--skip_bad"),
         watch="{mixed}", not_says=("--config.data.skip_bad",)),
    Case("data_preview_folder_bad_name", ["data", "preview", "--dataset", "folder:{euro}",
                                          "--out", "{wd}.png"], 1,
         ("\u20ac_1", "pass --config default --config.data.skip_bad=True"), watch="{euro}",
         not_says=("WORKDIR",), absent="{wd}.png"),
    # ---------------------------------------------------------------- train's own files
    Case("train_config_json_unreadable", tr(wd="{bad_config_json}"), 1,
         ("config.json", "cannot be read", "JSONDecodeError", "left as it is"),
         watch="{bad_config_json}"),
    Case("train_config_json_not_an_object", tr(wd="{list_config_json}"), 1,
         ("config.json", "not an object", "move it away"), watch="{list_config_json}"),
    Case("train_diverges", tr("--config.learning_rate=1e6"), 1,
         ("epoch 1: train loss", "diverged", "not saved", "--config.learning_rate=1e+06",
          "try 100000"), watch="{run}", absent="{wd}/checkpoints"),
]


def _fill(text: str, paths: dict) -> str:
    for key, value in paths.items():
        text = text.replace("{" + key + "}", value)
    return text


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line(case, inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    paths = {**inputs, "wd": str(tmp_path / "run")}
    if case.setup is not None:
        case.setup(paths, monkeypatch)
    args = [_fill(a, paths) for a in case.args]
    watched = _fill(case.watch, paths)
    before = snapshot(watched)
    try:
        code, err = run_cli(args, capsys)
        after = snapshot(watched)
    finally:
        held = getattr(sys.modules[__name__], "_held", None)
        if held is not None:
            (held.release if hasattr(held, "release") else held.close)()
            monkeypatch.delattr(sys.modules[__name__], "_held")
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    line = errors[0]
    assert line.startswith(f"charjax {args[0]}: error:" if case.id != "unknown_command"
                           else "charjax: error:"), line
    for fragment in case.says:
        assert _fill(fragment, paths) in line, (fragment, line)
    for fragment in case.not_says:
        assert _fill(fragment, paths) not in err, (fragment, err)
    if case.absent:
        assert not os.path.lexists(_fill(case.absent, paths)), case.absent
    assert "\\\\" not in line, line  # a repr of a regex or path doubles its backslashes
    assert code == case.code, (code, line)
    assert after == before, "the workdir must hold exactly what it held before"
    log = os.environ.get("CHARJAX_CORPUS_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            shown = line.replace(str(tmp_path), "TMP").replace(os.path.dirname(
                inputs["five"]), "INPUTS")
            f.write(f"{case.id}\t{code}\t{shown}\n")


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


def test_help_prints_the_flags_of_each_command(capsys):
    for command, flag in (("train", "--workdir"), ("eval", "--split"), ("predict", "--top_k"),
                          ("serve", "--port"), ("export", "--force"), ("data", "--out")):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            cli.run(["charjax", command, "--help"])
        out = capsys.readouterr().out
        assert exit_info.value.code == 0
        assert out.startswith(f"usage: charjax {command}") and flag in out, out


def _charjax(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "charjax", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_real_processes_fail_in_one_line(tmp_path):
    outside = _charjax("train", "--config", "configs/default.py", "--workdir",
                       str(tmp_path / "w"), cwd=tmp_path)
    assert outside.returncode == 2 and "Traceback" not in outside.stderr
    assert outside.stderr.count("\n") == 1
    assert "no such file" in outside.stderr
    assert os.path.join(ROOT, "configs", "default.py") in outside.stderr  # the fix
    bad = _charjax(*tr("--config.batch_size=0", wd=str(tmp_path / "w")))
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1, bad.stderr
    assert "--config.batch_size=0" in bad.stderr
    helped = _charjax("eval", "--help")
    assert helped.returncode == 0 and "--vote" in helped.stdout
    assert not os.path.exists(tmp_path / "w")


def test_os_errors_read_in_plain_words(tmp_path):
    from charjax import files

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [
        (FileExistsError(17, "File exists", str(a_file)), "is a file already, not a folder"),
        (NotADirectoryError(20, "Not a directory", str(a_file / "sub")),
         f"cannot be created under a file ({a_file} is a file)"),
        (IsADirectoryError(21, "Is a directory", str(tmp_path)), "is a folder, not a file"),
        (PermissionError(13, "Permission denied", "/root/x"), "permission denied"),
        (OSError(28, "No space left on device", "/x"), "no space left"),
    ]
    for error, words in cases:
        line = files.describe_os_error(error)
        assert words in line and "check the disk" not in line, line
        assert line.startswith(str(error.filename)), line


def _history(*epochs):
    """Epoch records: (train_loss, val_accuracy) per epoch."""
    return [{"epoch": i + 1, "train_loss": loss, "train_accuracy": 0.0, "val_loss": loss,
             "val_accuracy": acc, "seconds": 1.0} for i, (loss, acc) in enumerate(epochs)]


def test_the_divergence_rule_stops_bad_runs_and_never_a_healthy_one(trained_run):
    from charjax import validation
    from charjax.errors import DivergedError

    labels = np.repeat(np.arange(62), 2)  # 124 validation images: chance 1/62
    config = tiny_config(num_epochs=3)
    healthy = trained_run[1]["epochs"]  # the shared tiny run, 2 epochs
    for n in range(1, len(healthy) + 1):
        validation.check_progress(healthy[:n], tiny_config(num_epochs=len(healthy)), labels)
    slow = _history((4.20, 0.016), (4.05, 0.016), (3.95, 0.03))  # loss falls: learning
    for n in range(1, 4):
        validation.check_progress(slow[:n], config, labels)
    with pytest.raises(DivergedError, match="epoch 1: train loss 1.5e\\+31 is over 10x"):
        validation.check_progress(_history((1.5e31, 0.016)), config, labels)
    with pytest.raises(DivergedError, match="grew to over 10x the first epoch's 1.3"):
        validation.check_progress(_history((1.3, 0.5), (14.0, 0.2)), config, labels)
    validation.check_progress(_history((0.05, 0.9), (0.4, 0.9)), config, labels)  # below 4.13
    stuck = _history((4.13, 0.016), (4.13, 0.024), (4.14, 0.016))
    validation.check_progress(stuck[:2], config, labels)  # not the last epoch yet
    with pytest.raises(DivergedError, match="epochs 1-3: validation accuracy never rose above "
                                            "chance"):
        validation.check_progress(stuck, config, labels)
    validation.check_progress(stuck[:1], tiny_config(num_epochs=1), labels)  # one epoch: no rule
    chance, bound = validation.chance_accuracy_bound(labels)
    assert chance == pytest.approx(1 / 62) and chance < bound < 0.06


def test_blank_and_noise_are_answered_with_a_warning_by_eval_and_predict(
        trained_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    rng = np.random.default_rng(0)
    images = np.zeros((62, 48, 48), np.uint8)  # the model's size: no resampling smooths noise
    images[:, 12:36, 12:36] = [glyph(s) for s in range(62)]
    images[:3] = 0  # blank
    images[3:7] = rng.integers(0, 256, (4, 48, 48))  # noise
    data = tmp_path / "odd.npz"
    np.savez(data, images=images, labels=np.arange(62))
    code, err = run_cli(["eval", "--workdir", str(trained_run[0]), "--dataset", f"npz:{data}"],
                        capsys)
    assert code == 0, err
    assert "charjax eval: warning: of 62 images, 3 blank and 4 look like noise" in err, err
    noise = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 256, (64, 64)).astype(np.uint8)).save(noise)
    code, err = run_cli(["predict", "--workdir", str(trained_run[0]), str(noise)], capsys)
    assert code == 0 and "Traceback" not in err
    assert f"charjax predict: warning: {noise}: looks like noise" in err, err


def test_a_missing_best_checkpoint_is_named_not_silently_replaced(trained_run, tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.chdir(ROOT)
    run = tmp_path / "run"
    shutil.copytree(trained_run[0], run)
    best = trained_run[1]["best_epoch"]
    shutil.rmtree(run / "checkpoints" / str(best))
    left = sorted(int(n) for n in os.listdir(run / "checkpoints") if n.isdigit())
    assert left, "the tiny run keeps two epochs"
    code, err = run_cli(["eval", "--workdir", str(run), "--dataset", "synthetic"], capsys)
    assert code == 0, err
    assert f"the checkpoint of the best epoch ({best}) is missing; using epoch {left[-1]}" in err
    code, err = run_cli(["predict", "--workdir", str(run), str(ROOT + "/benchmarks/figures/"
                                                                   "serve.png")], capsys)
    assert code == 0 and f"best epoch ({best}) is missing" in err, err


def test_force_overwrites_what_the_refusal_protected(trained_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    image = tmp_path / "g.png"
    Image.fromarray(glyph(1)).save(image)
    out, shown = tmp_path / "answers.json", tmp_path / "seen"
    out.write_text("mine")
    shown.mkdir()
    (shown / "0000_g.png").write_text("mine")
    argv = ["predict", "--workdir", str(trained_run[0]), "--json", str(out), "--show",
            str(shown), str(image)]
    code, err = run_cli(argv, capsys)
    assert code == 2 and out.read_text() == "mine" and (shown / "0000_g.png").read_text() == "mine"
    code, err = run_cli([*argv[:-1], "--force", str(image)], capsys)
    assert code == 0, err
    assert out.read_text().startswith("[") and Image.open(shown / "0000_g.png").size == (48, 48)
    assert sorted(os.listdir(tmp_path)) == ["answers.json", "g.png", "seen"]  # no temp files
