"""`charjax` command line: wires flags and config files to the library, nothing more.

    charjax train --config configs/default.py --workdir runs/demo [--config.FIELD=VALUE ...]

Every failure a user can fix (a mistyped override, a bad value, bad data) ends in one
readable line on stderr and a non-zero exit code, not a traceback.
"""

from __future__ import annotations

import dataclasses
import logging as std_logging
import os
import re
import sys
from collections.abc import Callable

from absl import app, flags, logging

from charjax.errors import CharjaxError, DataError, Interrupted

FLAGS = flags.FLAGS

# The command line being run; config_flags reads its `--config.FIELD=VALUE` overrides
# when the flag is defined, so `run(argv)` works in-process too (the tests do that).
_ARGV: list[str] = []
# Flags the last command defined, and those that were there before any command's; the
# difference is removed before the next `run` in the same process.
_DEFINED: list[str] = []
_BASELINE: set[str] | None = None
# True when run as the `charjax` program: an interrupted run then leaves with os._exit
# once everything is flushed, so no library thread outlives the interpreter's shutdown.
_PROGRAM = False


def _fail(command: str, message: str, code: int = 2) -> None:
    prefix = f"charjax {command}: " if command else "charjax: "
    print(f"{prefix}error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(code)


def _config_file_problem(path: str) -> str | None:
    """Why --config PATH cannot be read (one line with the fix), or None."""
    file = path.split(":", 1)[0]
    if os.path.isfile(file):
        return None
    where = "" if os.path.isabs(file) else f" (relative to {os.getcwd()})"
    from charjax import config_files

    bundled = os.path.join(config_files.SHIPPED_DIR, os.path.basename(file))
    hint = (f"; did you mean {bundled}?" if file and os.path.isfile(bundled)
            else "; pass a config file's path")
    shipped = ", ".join(config_files.shipped_names())
    return f"--config {path}: no such file{where}{hint}, or a shipped config's name ({shipped})"


def _config_value(argv: list[str]) -> str | None:
    """The value of --config in `argv`, if any."""
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _config_or_fail(command: str, required: bool = True):
    """FLAGS.config, loaded now (config_flags loads lazily); a bad file is one line."""
    from ml_collections import config_flags

    if FLAGS["config"].value is None and not FLAGS["config"].present:
        if not required:
            return None
        _fail(command, "--config is required: pass a config file or a shipped config's "
                       "name, e.g. --config default")
    path = config_flags.get_config_filename(FLAGS["config"])
    problem = _config_file_problem(path or "")
    if problem:
        _fail(command, problem)
    try:
        config = FLAGS.config
        config.keys()  # forces the load
    except Exception as e:  # the file's own code failed: name it, in one line
        cause = e.__cause__ or e
        _fail(command, f"--config {path}: cannot be loaded ({type(cause).__name__}: "
                       f"{_clean_message(cause)}); fix the file or pick another config")
    return config


def _clean_message(error: BaseException) -> str:
    """One line from an exception; ml_collections quotes and splits its typo hints."""
    text = str(error).strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return " ".join(text.replace("\\n", "\n").replace("\\'", "'").split())


def _flags_parser(command: str) -> Callable[[list[str]], list[str]]:
    def parse(argv: list[str]) -> list[str]:
        path = _config_value(argv) if "config" in FLAGS else None
        problem = _config_file_problem(path) if path is not None else None
        if problem:
            _fail(command, problem)
        try:
            return FLAGS(argv)
        except (flags.Error, AttributeError, TypeError, ValueError, KeyError, OSError) as e:
            cause = e.__cause__ if isinstance(e, OSError) and e.__cause__ else e
            missing = re.search(r"Flag --(\w+) must have a value other than None", str(cause))
            if missing:
                _fail(command, f"--{missing.group(1)} is required; usage: "
                               f"{usage_line(command)}")
            _fail(command, _clean_message(cause))
        except Exception as e:  # the config file's own code failed while it was loaded
            _fail(command, f"--config {path}: cannot be loaded ({type(e).__name__}: "
                           f"{_clean_message(e)}); fix the file or pick another config")
        return []

    return parse


class _ConfigFileParser(flags.ArgumentParser):
    """--config FILE[:ARG]: the file's get_config([ARG]), loaded by config_files with
    importlib's exec_module (ml_collections' own parser calls the deprecated load_module())."""

    def parse(self, argument: str):
        from charjax import config_files

        file, *arg = argument.split(":", 1)
        config = config_files.load(file, *arg)
        if callable(getattr(config, "lock", None)):
            config.lock()
        return config

    def flag_type(self) -> str:
        return "config object"


def _define_config_flag(help_string: str) -> None:
    """--config as ml_collections defines it (`--config.FIELD=VALUE` overrides, locked),
    with the file loaded by _ConfigFileParser."""
    from ml_collections import config_flags

    config_flags.DEFINE_config_file("config", None, help_string, lock_config=True,
                                    sys_argv=_ARGV)
    FLAGS["config"].parser = _ConfigFileParser()


def _define_train_flags() -> None:
    _define_config_flag("A shipped config by name (default) or a config file's path.")
    flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, logs.")
    flags.mark_flags_as_required(["config", "workdir"])


def _train(argv: list[str]) -> None:
    if len(argv) > 1:
        _fail("train", f"unexpected arguments {argv[1:]}")
    config = _config_or_fail("train")
    from charjax import backend, train, validation, workdir

    backend.configure(config)  # first: XLA reads its flags when it starts
    validation.check_config(config)
    workdir.check_usable(FLAGS.workdir)
    if config.ensemble_members > 1:
        from charjax import ensemble

        ensemble.train_ensemble(config, FLAGS.workdir)
    else:
        train.train_and_evaluate(config, FLAGS.workdir)


SPLITS = ["auto", "all", "train", "validation", "test"]


def _check_output_file(command: str, flag: str, path: str, force: bool = False,
                       example: str = "out.json", create_folder: bool = False) -> None:
    """Fails now, before any work, when `path` cannot be written later or holds a file
    (which only --force may overwrite)."""
    from charjax import files

    folder = os.path.dirname(os.path.abspath(path))
    if create_folder and not os.path.lexists(folder):  # export creates it
        problem = files.output_folder_problem(folder)
        problem = problem and f"its folder {folder} {problem}"
    else:
        problem = files.output_file_problem(path, force=force, example=example)
    if problem:
        _fail(command, f"--{flag} {path}: {problem}")


def _define_force_flag(what: str) -> None:
    flags.DEFINE_bool("force", False, f"Overwrite {what} if it exists (never done without it).")


def _dataset_specs() -> str:
    from charjax.datasets import sources

    return sources.usages()


def _define_eval_flags() -> None:
    flags.DEFINE_multi_string("workdir", None, "Run directory; repeat it for an ensemble.")
    flags.DEFINE_string("dataset", None, f"Dataset spec: {_dataset_specs()}.")
    flags.DEFINE_enum("split", "auto", SPLITS, "auto (the run's test split of its own data, "
                      "else all), all, train, validation or test.")
    flags.DEFINE_bool("vote", False, "Ensemble by majority vote instead of mean probability.")
    flags.DEFINE_bool("adapt_class_mix", False, "Also score after re-weighting the answers to "
                      "the class mix of these images, estimated from the images alone (no "
                      "labels): breaks look-alike ties toward the commoner class.")
    flags.DEFINE_string("json", None, "Also write the metrics to this JSON file.")
    flags.DEFINE_bool("skip_bad", False, "folder: datasets: leave unreadable or badly named "
                      "files out (each is logged) instead of stopping at the first.")
    _define_force_flag("the --json file")
    flags.mark_flags_as_required(["workdir", "dataset"])


_LISTED = " (they are listed in WORKDIR/skipped_files.txt)"


def _eval_data_error(error: DataError) -> DataError:
    """A dataset's error with its fix spelled as eval's flags: a loader names the training
    config's fields, which eval does not take (it reads the run's)."""
    text = str(error).replace(_LISTED, "").replace(", or set --config.data.folder.pattern", "")
    return DataError(text.replace("--config.data.skip_bad=True", "--skip_bad"))


def _data_command_error(error: DataError, config_given: bool) -> DataError:
    """A dataset's error with its fix spelled as the data commands take it: config overrides
    need --config, and there is no workdir to list skipped files in."""
    text = str(error).replace(_LISTED, " (each is named in a warning)")
    if not config_given:
        text = text.replace("--config.data.", "--config default --config.data.")
    return DataError(text)


def _eval(argv: list[str]) -> None:
    from charjax import evaluate, files, inference, jsonio

    if len(argv) > 1:
        _fail("eval", f"unexpected arguments {argv[1:]}")
    if FLAGS.json:
        _check_output_file("eval", "json", FLAGS.json, FLAGS.force)
    predictor = inference.load(FLAGS.workdir, vote=FLAGS.vote)
    run_config = predictor.config
    if FLAGS.skip_bad:
        run_config = run_config.copy_and_resolve_references()
        run_config.data.skip_bad = True
    try:
        data = evaluate.load_eval_data(FLAGS.dataset, run_config, FLAGS.split)
    except DataError as e:
        raise _eval_data_error(e) from None
    _warn_guesses(data.images)
    result, scores = evaluate.score(predictor, data.images, data.labels)
    count = len(predictor.members)
    how = f"{count} models, {'vote' if predictor.vote else 'mean probability'}"
    print(
        f"{FLAGS.dataset} ({FLAGS.split}, n={result['n']}"
        + (f", {how}" if count > 1 else "")
        + f"): accuracy {result['accuracy']:.4f}  top-5 {result['top5_accuracy']:.4f}  "
        f"loss {result['loss']:.4f}" + (" (of the mean probability: a vote has none)"
                                          if predictor.vote else "")
    )
    worst = sorted(result["per_class"].items(), key=lambda kv: kv[1])[:5]
    print("weakest classes: " + ", ".join(f"{c} {a:.2f}" for c, a in worst))
    if result["most_confused"]:
        print("most confused (true->predicted): " + ", ".join(
            f"{t}->{p} {n}" for t, p, n in result["most_confused"][:5]))
    if FLAGS.adapt_class_mix:
        result["adapted_to_class_mix"] = _adapted_metrics(predictor.config, scores, data.labels)
    if FLAGS.json:
        files.write_text(FLAGS.json, jsonio.dumps(result) + "\n", overwrite=FLAGS.force)


def _warn_guesses(images) -> None:
    """One warning line when some images to score are blank or noise (their answers are
    guesses), as `predict` and the API warn per image."""
    from charjax import inputs

    blank, noise = inputs.guess_counts(images)
    if blank or noise:
        parts = [f"{blank} blank" if blank else "", f"{noise} look like noise" if noise else ""]
        print(f"charjax eval: warning: of {len(images)} images, "
              f"{' and '.join(p for p in parts if p)}; their answers are guesses",
              file=sys.stderr)


def _adapted_metrics(run_config, scores, labels) -> dict:
    """`charjax eval --adapt_class_mix`: `evaluate.class_mix_metrics` with the training mix
    the run recorded (or, for older runs, counted on its training split); printed."""
    from charjax import evaluate, train

    counts = evaluate.training_class_counts(
        FLAGS.workdir[0], lambda: train.load_splits(run_config).train.labels)
    result = evaluate.class_mix_metrics(scores, labels, counts)
    commonest = sorted(result["estimated_mix"].items(), key=lambda cm: cm[1], reverse=True)
    print(f"adapted to the estimated class mix: accuracy {result['accuracy']:.4f}  top-5 "
          f"{result['top5_accuracy']:.4f}  (commonest: " + ", ".join(
              f"{c} {m:.1%}" for c, m in commonest[:5]) + ")")
    return result


def _define_predict_flags() -> None:
    flags.DEFINE_multi_string("workdir", None, "Run directory; repeat it for an ensemble.")
    flags.DEFINE_integer("top_k", 3, "How many candidate characters to print per image.")
    flags.DEFINE_string("json", None, "Also write the answers to this JSON file.")
    flags.DEFINE_string("show", None, "Write the 48x48 input the model saw for each image "
                        "into this folder (PNG; created if missing).")
    _define_force_flag("the --json file and the --show images")
    flags.mark_flags_as_required(["workdir"])


def _show_names(paths: list[str]) -> list[str]:
    """The file --show writes for each image: its index and its name, so none collide."""
    return [f"{i:04d}_{os.path.splitext(os.path.basename(p))[0]}.png"
            for i, p in enumerate(paths)]


def _predict(argv: list[str]) -> None:
    import numpy as np
    from PIL import Image

    from charjax import files, recognizer

    paths = argv[1:]
    if not paths:
        _fail("predict", "name at least one image file: charjax predict --workdir DIR IMAGE ...")
    try:
        recognizer.check_top_k(FLAGS.top_k)
    except ValueError as e:
        _fail("predict", f"--{e}")
    if FLAGS.json:
        _check_output_file("predict", "json", FLAGS.json, FLAGS.force)
    names = _show_names(paths)
    if FLAGS.show:
        problem = files.output_folder_problem(FLAGS.show, names, FLAGS.force)
        if problem:
            _fail("predict", f"--show {FLAGS.show}: {problem}")
    # several workdirs: an ensemble, their mean probability
    results = recognizer.Recognizer.load(FLAGS.workdir).recognize(paths, FLAGS.top_k)
    if FLAGS.show:
        os.makedirs(FLAGS.show, exist_ok=True)
    failed = 0
    for r, name in zip(results, names, strict=True):
        if r.error:
            failed += 1
            print(f"charjax predict: error: {r.error}", file=sys.stderr)
            continue
        print(r.name + ": " + "  ".join(f"{c} {p:.3f}" for c, p in r.top))
        if r.warning:
            print(f"charjax predict: warning: {r.name}: {r.warning}", file=sys.stderr)
        if FLAGS.show:
            with files.atomic_path(os.path.join(FLAGS.show, name), ".png",
                                   overwrite=FLAGS.force) as tmp:
                Image.fromarray(np.asarray(r.pixels)[..., 0]).save(tmp, format="PNG")
    if FLAGS.json:
        from charjax import jsonio

        answers_json = [{"file": r.name, "top": [[c, p] for c, p in r.top],
                         "warning": r.warning, "error": r.error} for r in results]
        files.write_text(FLAGS.json, jsonio.dumps(answers_json) + "\n", overwrite=FLAGS.force)
    if failed:
        if len(results) > 1:
            print(f"charjax predict: {failed} of {len(results)} images could not be read",
                  file=sys.stderr)
        sys.exit(1)


def _define_read_flags() -> None:
    flags.DEFINE_string("workdir", None, "Run directory.")
    flags.DEFINE_integer("top_k", 3, "How many candidates to keep per character (--json).")
    flags.DEFINE_string("json", None, "Also write each reading (boxes, top-k) to this JSON file.")
    _define_force_flag("the --json file")
    flags.mark_flags_as_required(["workdir"])


def _read(argv: list[str]) -> None:
    """`charjax read`: the text of each image of a word or line (charjax/reading.py)."""
    from charjax import recognizer
    from charjax.errors import DataError

    paths = argv[1:]
    if not paths:
        _fail("read", "name at least one image file: charjax read --workdir DIR IMAGE ...")
    try:
        recognizer.check_top_k(FLAGS.top_k)
    except ValueError as e:
        _fail("read", f"--{e}")
    if FLAGS.json:
        _check_output_file("read", "json", FLAGS.json, FLAGS.force)
    rec = recognizer.Recognizer.load(FLAGS.workdir)
    out, failed = [], 0
    for path in paths:
        try:
            result = rec.read(path, FLAGS.top_k)
        except (DataError, ValueError) as e:
            failed += 1
            print(f"charjax read: error: {e if path in str(e) else f'{path}: {e}'}",
                  file=sys.stderr)
            out.append({"file": path, "error": str(e)})
            continue
        print(f"{path}: {result.text}")
        for warning in result.warnings:
            print(f"charjax read: warning: {path}: {warning}", file=sys.stderr)
        out.append({"file": path, **result.to_dict()})
    if FLAGS.json:
        from charjax import files, jsonio

        files.write_text(FLAGS.json, jsonio.dumps(out) + "\n", overwrite=FLAGS.force)
    if failed:
        sys.exit(1)


def _define_adapt_flags() -> None:
    flags.DEFINE_string("workdir", None, "The run to adapt; its corrections/ folder is read.")
    flags.DEFINE_string("out", None, "Folder of the adapted run (a new run folder).")
    flags.mark_flags_as_required(["workdir", "out"])


def _adapt(argv: list[str]) -> None:
    """`charjax adapt`: fine-tune a run on its corrections (charjax/adapt.py)."""
    from charjax import adapt, train

    if len(argv) > 1:
        _fail("adapt", f"unexpected argument(s) {argv[1:]}; use --workdir RUN --out NEW")
    result = adapt.adapt(FLAGS.workdir, FLAGS.out, train.train_and_evaluate)
    print(f"adapted {FLAGS.workdir} on {result['corrections']} corrections into {FLAGS.out} "
          f"(accuracy on its own held-out data {result['test_accuracy']:.4f})")


def _define_serve_flags() -> None:
    flags.DEFINE_multi_string("workdir", None, "Run directory; repeat it for an ensemble.")
    flags.DEFINE_bool("vote", False, "Ensemble by majority vote instead of mean probability.")
    flags.DEFINE_string("host", "127.0.0.1", "Address to listen on; 127.0.0.1 keeps it local.")
    flags.DEFINE_integer("port", 8000, "Port to listen on.")
    flags.mark_flags_as_required(["workdir"])


def _serve(argv: list[str]) -> None:
    if len(argv) > 1:
        _fail("serve", f"unexpected arguments {argv[1:]}")
    if not 0 < FLAGS.port < 65536:
        _fail("serve", f"--port must be in 1..65535, got {FLAGS.port}")
    from charjax import serve

    try:
        serve.run_server(FLAGS.workdir, FLAGS.host, FLAGS.port, vote=FLAGS.vote)
    except serve.Stopped as e:
        print(f"charjax serve: {e}", file=sys.stderr)


def _define_export_flags() -> None:
    flags.DEFINE_string("workdir", None, "Run directory whose best checkpoint is exported.")
    flags.DEFINE_string("out", None, "File to write (model.jaxexport, model.onnx); FILE.json "
                        "beside it describes the model.")
    flags.DEFINE_enum("format", "jaxexport", ["jaxexport", "onnx"],
                      "jaxexport: serialised StableHLO for jax.export; onnx: an ONNX graph.")
    _define_force_flag("FILE and FILE.json")
    flags.mark_flags_as_required(["workdir", "out"])


def _export(argv: list[str]) -> None:
    if len(argv) > 1:
        _fail("export", f"unexpected arguments {argv[1:]}")
    example = f"model.{'onnx' if FLAGS.format == 'onnx' else 'jaxexport'}"
    for path in (FLAGS.out, FLAGS.out + ".json"):
        _check_output_file("export", "out", path, FLAGS.force, example, create_folder=True)
    from charjax import export

    path = export.export_run(FLAGS.workdir, FLAGS.out, FLAGS.format, overwrite=FLAGS.force)
    print(f"wrote {path}")


def _define_data_flags() -> None:
    flags.DEFINE_string("dataset", None, f"Dataset spec: {_dataset_specs()}.")
    flags.DEFINE_string("out", None, "export: a new or empty folder; preview: a .png file.")
    _define_config_flag("Optional config file; its data block (folder pattern, skip_bad, "
                        "synthetic size, tfds_data_dir) and augment block are used.")
    flags.DEFINE_integer("n", 64, "preview: how many images.")
    flags.DEFINE_bool("augment", False, "preview: show the images distorted by augmentation.")
    flags.DEFINE_integer("seed", 0, "preview: the augmentation draw.")
    _define_force_flag("preview: the --out file")
    flags.mark_flags_as_required(["dataset", "out"])


def _data_export(dataset) -> None:
    from charjax.datasets import export

    count = export.export(dataset, FLAGS.out)
    print(f"wrote {count} images to {FLAGS.out}; read them back with --dataset folder:{FLAGS.out}")


def _data_preview(dataset) -> None:
    from charjax import preview

    augment_cfg = _config_or_default().augment if FLAGS.augment else None
    preview.preview_dataset(dataset, FLAGS.out, FLAGS.n, augment_cfg, FLAGS.seed)
    print(f"wrote {FLAGS.out}")


def _config_or_default():
    """--config when given (data commands), else the shipped default config."""
    config = _config_or_fail("data", required=False)
    if config is not None:
        return config
    from charjax import config_files

    return config_files.load("default")


# `charjax data SUB ...`: every sub-command takes a dataset spec; add new ones here.
DATA_COMMANDS: dict[str, Callable] = {"export": _data_export, "preview": _data_preview}


def _data(argv: list[str]) -> None:
    if len(argv) != 2 or argv[1] not in DATA_COMMANDS:
        got = f"got {argv[1:]}" if len(argv) > 1 else "none given"
        _fail("data", f"name one sub-command of {sorted(DATA_COMMANDS)} ({got}); "
                      f"usage: {usage_line('data')}")
    if argv[1] == "preview" and FLAGS.n < 1:
        _fail("data", f"--n must be at least 1, got {FLAGS.n}")
    if argv[1] == "preview":
        _check_output_file("data", "out", FLAGS.out, FLAGS.force, "grid.png")
    from charjax import datasets

    try:
        dataset, skipped = datasets.load_with_skipped(FLAGS.dataset, _config_or_default().data)
    except DataError as e:
        raise _data_command_error(e, FLAGS["config"].present) from None
    if skipped:
        print(f"{len(skipped)} file(s) left out (see the warnings above)", file=sys.stderr)
    DATA_COMMANDS[argv[1]](dataset)


@dataclasses.dataclass(frozen=True)
class Command:
    """One `charjax` command: its usage (flags after `charjax NAME`, one line per form),
    what it does, and the functions that define its flags and run it. A new command is one
    entry in COMMANDS; the overview, `--help` and the missing-flag messages come from it."""

    usage: tuple[str, ...]
    summary: str
    define: Callable[[], None]
    main: Callable[[list[str]], None]
    # Training stops between steps on SIGINT/SIGTERM (charjax.interrupt); a command that
    # handles the signals itself (serve) says False.
    trainer_signals: bool = True


COMMANDS: dict[str, Command] = {
    "train": Command(
        ("--config CONFIG --workdir DIR [--config.FIELD=VALUE ...]",),
        "train, keep the best weights by validation accuracy, score the test split",
        _define_train_flags, _train),
    "eval": Command(
        ("--workdir DIR [--workdir DIR2 ...] --dataset SPEC [--split S] [--vote] "
         "[--adapt_class_mix] [--skip_bad] [--json F [--force]]",),
        "restore the best checkpoint(s) and report accuracy, loss, top-5, per class",
        _define_eval_flags, _eval),
    "predict": Command(
        ("--workdir DIR [--top_k 3] [--json F] [--show DIR] [--force] IMAGE [IMAGE ...]",),
        "the top-k characters of each image file (any size, colour or polarity)",
        _define_predict_flags, _predict),
    "serve": Command(
        ("--workdir DIR [--workdir DIR2 ... [--vote]] [--host 127.0.0.1] [--port 8000]",),
        "a web page to draw or upload a character, and a JSON API (POST /predict)",
        _define_serve_flags, _serve, trainer_signals=False),
    "export": Command(
        ("--workdir DIR --out FILE [--format jaxexport|onnx] [--force]",),
        "the inference function with its weights, runnable with JAX alone (or ONNX Runtime)",
        _define_export_flags, _export),
    "data": Command(
        ("export  --dataset SPEC --out DIR [--config CONFIG.py]",
         "preview --dataset SPEC --out GRID.png [--n 64] [--augment] [--seed 0] "
         "[--config CONFIG.py] [--force]"),
        "export: write a dataset as a folder of PNGs, label in each name (folder:DIR reads it "
        "back); preview: a labelled grid of the first n images, distorted by the augmentation "
        "with --augment",
        _define_data_flags, _data),
    "read": Command(
        ("--workdir DIR [--top_k 3] [--json F [--force]] IMAGE [IMAGE ...]",),
        "the text of each image of a handwritten word or line (case from the line)",
        _define_read_flags, _read),
    "adapt": Command(
        ("--workdir RUN --out NEW_RUN",),
        "fine-tune a run on the corrections in RUN/corrections (one writer's hand)",
        _define_adapt_flags, _adapt),
}


def usage_line(command: str) -> str:
    """`charjax COMMAND FLAGS` for error messages (every form, joined by ' | ')."""
    return " | ".join(f"charjax {command} {form}" for form in COMMANDS[command].usage)


def _overview() -> str:
    import textwrap

    lines = ["usage: charjax COMMAND [FLAGS]", "", "commands:"]
    for name, command in COMMANDS.items():
        for form in command.usage:
            label = name if len(command.usage) > 1 else f"{name:<7}"  # data SUB: unpadded
            lines += textwrap.wrap(f"{label} {form}", 96, initial_indent="  ",
                                   subsequent_indent=" " * 10, break_on_hyphens=False)
        lines += textwrap.wrap(command.summary, 96, initial_indent=" " * 10,
                               subsequent_indent=" " * 10)
    lines += [
        "",
        "CONFIG: a shipped config by name (default, emnist, tutorial, ...) or a config file's "
        "path.",
        "dataset specs (--dataset, config.data.source):",
    ]
    from charjax.datasets import sources

    for source in sources.registered():
        lines += textwrap.wrap(f"{source.usage:<18}{source.help}", 96, initial_indent="  ",
                               subsequent_indent=" " * 20, break_on_hyphens=False)
    lines += [
        "",
        "run `charjax COMMAND --help` for a command's flags.",
    ]
    return "\n".join(lines) + "\n"


class _StderrHandler(std_logging.StreamHandler):
    """Writes to sys.stderr as it is when a record comes, not as it was when the handler was
    made: a caller (a notebook, a test harness) may replace and close its stderr in between."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def setup_console_logging() -> None:
    """charjax's own progress as plain timestamped lines; libraries' INFO chatter stays quiet."""
    logging.set_verbosity(logging.WARNING)
    handler = _StderrHandler()
    handler.setFormatter(std_logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger = std_logging.getLogger("charjax")
    logger.handlers[:] = [handler]
    logger.setLevel(std_logging.INFO)
    logger.propagate = False


def _leave(command: str, message: str, code: int) -> None:
    """Exit after an interruption: the message, flushed logs, and no interpreter shutdown
    racing library threads when this is the `charjax` program."""
    if not _PROGRAM:
        _fail(command, message, code)
    print(f"charjax {command}: error: {message}", file=sys.stderr)
    std_logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _guarded(command: str, main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    def wrapped(argv: list[str]) -> None:
        from charjax import files, interrupt

        setup_console_logging()
        if COMMANDS[command].trainer_signals:
            interrupt.terminate_like_interrupt()
        try:
            main(argv)
        except Interrupted as e:
            _leave(command, str(e), e.exit_code)
        except CharjaxError as e:
            _fail(command, str(e), code=e.exit_code)
        except KeyboardInterrupt:
            _leave(command, "interrupted; rerun the same command to resume", 130)
        except OSError as e:  # the disk, not the program: full, read-only, gone
            _fail(command, files.describe_os_error(e), code=1)

    return wrapped


def _command_help(command: str) -> str:
    forms = COMMANDS[command].usage
    lines = [f"usage: charjax {command} {forms[0]}"]
    lines += [f"       charjax {command} {form}" for form in forms[1:]]
    lines += ["", COMMANDS[command].summary, "", "flags:"]
    for name in sorted(n for n in _DEFINED if "." not in n):
        flag = FLAGS[name]
        default = "" if flag.default in (None, "", []) else f" (default: {flag.default})"
        lines.append(f"  --{name}: {flag.help}{default}")
    if command == "train":
        lines.append("  --config.FIELD=VALUE: override any field of the config file "
                     "(see configs/default.py)")
    return "\n".join(lines) + "\n"


def _define(command: str) -> None:
    """Defines `command`'s flags, first removing any a previous in-process run defined
    (config_flags adds a flag per `--config.FIELD` override, some while parsing)."""
    global _BASELINE
    if _BASELINE is None:
        _BASELINE = set(FLAGS)
    for name in sorted(set(FLAGS) - _BASELINE):
        delattr(FLAGS, name)
    COMMANDS[command].define()
    _DEFINED[:] = sorted(set(FLAGS) - _BASELINE)


def _shipped_config_paths(argv: list[str]) -> list[str]:
    """argv with `--config NAME` of a shipped config turned into its file's path."""
    from charjax import config_files

    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--config" and i + 1 < len(out):
            out[i + 1] = config_files.shipped_path(out[i + 1]) or out[i + 1]
        elif arg.startswith("--config="):
            value = arg.split("=", 1)[1]
            out[i] = f"--config={config_files.shipped_path(value) or value}"
    return out


def run(argv: list[str] | None = None) -> None:
    """Console entry point: `charjax COMMAND [FLAGS]`; `argv` runs it in-process."""
    global _ARGV, _PROGRAM
    _PROGRAM = argv is None
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(_overview(), end="")
        sys.exit(0 if len(argv) >= 2 else 2)
    command = argv[1]
    if command not in COMMANDS:
        _fail("", f"unknown command {command!r}; choose one of {sorted(COMMANDS)}")
    _ARGV = [f"charjax {command}", *_shipped_config_paths(argv[2:])]
    _define(command)
    main = COMMANDS[command].main
    if any(a in ("-h", "--help", "-help", "--helpshort", "--helpfull") for a in argv[2:]):
        print(_command_help(command), end="")
        sys.exit(0)
    app.run(
        _guarded(command, main),
        argv=list(_ARGV),
        flags_parser=_flags_parser(command),
    )
