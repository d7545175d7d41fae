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

from charjax import charset, checkpoints, cli, train
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
    checkpoints.save(mngr, 1, state, train.resolved_config(config), [],
                     {"val_accuracy": 0.5, "val_loss": 1.0})
    mngr.wait_until_finished()
    mngr.close()
    p["busy"] = str(base / "busy")
    os.makedirs(p["busy"])
    return p


@dataclasses.dataclass
class Case:
    id: str
    args: list[str]  # {wd} is a fresh path; other {names} are keys of the `inputs` fixture
    code: int
    says: tuple[str, ...]  # fragments the error line must hold: the thing and the fix
    watch: str = "{wd}"  # the workdir that must be left as it was
    setup: Callable | None = None  # (paths, monkeypatch) -> None, before the run


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
            held.release()
            monkeypatch.delattr(sys.modules[__name__], "_held")
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    line = errors[0]
    assert line.startswith(f"charjax {args[0]}: error:" if case.id != "unknown_command"
                           else "charjax: error:"), line
    for fragment in case.says:
        assert _fill(fragment, paths) in line, (fragment, line)
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
                          ("data", "--out")):
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
