"""charjax's modules import each other without a cycle, and the layering holds.

Read from the source (ast), so every import counts, late ones inside functions too; only
`if TYPE_CHECKING:` blocks are left out. `from charjax.x import y` is an edge to the module
charjax.x.y when that is a module, else to charjax.x.
"""

from __future__ import annotations

import ast
import os

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "charjax")


def _modules() -> dict[str, str]:
    """Module name -> file, for every .py file under charjax/."""
    out = {}
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), ROOT)[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                out[".".join(rel)] = os.path.join(folder, name)
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: str, module: str, known: set[str]) -> set[str]:
    """The charjax modules that `module` (at `path`) imports."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and _is_type_checking(node) for n in ast.walk(node)}
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in known else base)
    return {name for name in found if name in known and name != module}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search, three colours)."""
    colour = dict.fromkeys(graph, 0)  # 0 unvisited, 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if colour[nxt] == 1:
                return stack[stack.index(nxt):] + [nxt]
            if colour[nxt] == 0 and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        colour[node] = 2
        return None

    for node in sorted(graph):
        if colour[node] == 0 and (cycle := visit(node)):
            return cycle
    return None


def test_charjax_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_layering():
    graph = import_graph()
    # the core: state is used by training, evaluation and checkpoints
    for user in ("charjax.train", "charjax.evaluate", "charjax.checkpoints"):
        assert "charjax.state" in graph[user], user
    # every inference path goes through charjax.inference, which sits below all of them
    for user in ("charjax.evaluate", "charjax.recognizer", "charjax.export",
                 "charjax.reporting.projector", "charjax.ensemble", "charjax.cli"):
        assert "charjax.inference" in graph[user], user
    assert not graph["charjax.inference"] & {"charjax.evaluate", "charjax.recognizer",
                                             "charjax.train", "charjax.reporting.projector"}
    assert {"charjax.checkpoints", "charjax.evaluate"} <= graph["charjax.train"]
    for module, imported in graph.items():
        if module != "charjax.__main__":
            assert "charjax.cli" not in imported, f"{module} imports the CLI"
        # the trainer is called from the edges only: the CLI, the server's adapt route,
        # and ensemble training
        if module not in ("charjax.ensemble", "charjax.cli", "charjax.serve.read_routes"):
            assert "charjax.train" not in imported, f"{module} imports the trainer"


def _model_applications(source: str) -> dict[str, list[int]]:
    """Function name -> lines where it applies a model: calls `X.apply(variables, ...)` (a
    Flax module's apply always takes the variables, unlike `malloc_tuning.apply()`) or
    `X.apply_fn(...)` (a TrainState's handle to it), and any other use of `X.apply` (a
    model's apply handed to jit, say) but `apply_fn=model.apply` in `create_train_state`."""
    found: dict[str, list[int]] = {}

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name, has_args = node.func.attr, bool(node.args or node.keywords)
            if (name == "apply" and has_args) or name == "apply_fn":
                found.setdefault(function, []).append(node.lineno)
            children = [*node.args, *node.keywords, node.func.value]  # not the callee again
        elif isinstance(node, ast.Attribute) and node.attr == "apply" and \
                function != "create_train_state":
            found.setdefault(function, []).append(node.lineno)
        for child in children:
            visit(child, function)

    visit(ast.parse(source), "<module>")
    return found


def test_a_model_is_applied_in_two_places_only():
    """Outside training's loss (`state.forward`, training mode), every inference path (eval,
    predict, serve, export, the projector, ensembles) runs `charjax.inference.run_model`."""
    found = {(name, function): lines for name, path in _modules().items()
             for function, lines in _model_applications(
                 open(path, encoding="utf-8").read()).items()}
    assert set(found) == {("charjax.inference", "run_model"), ("charjax.state", "forward")}, \
        f"a model applied outside charjax.inference.run_model and state.forward: {found}"
    sample = ("def f(m, v, x):\n    g = jax.jit(m.apply)\n    return m.apply(v, x)\n"
              "def h(s):\n    tuning.apply()\n    s.apply_gradients(grads=1)\n"
              "    return s.apply_fn({}, 1)\n")
    assert _model_applications(sample) == {"f": [2, 3], "h": [7]}  # the finder finds them


KERNEL_NAMES = {"onednn", "fast", "flax"}


def _kernel_name_comparisons(path: str) -> list[int]:
    """Lines of `path` that compare something with a kernel name ("x == 'onednn'",
    "x in ('fast', 'onednn')")."""
    lines = []
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Compare):
            constants = {n.value for part in (node.left, *node.comparators)
                         for n in ast.walk(part) if isinstance(n, ast.Constant)}
            if constants & KERNEL_NAMES:
                lines.append(node.lineno)
    return lines


def test_the_kernel_is_chosen_in_one_place():
    """Only charjax.kernels.select reads a kernel's name; everything else is handed
    what it chose."""
    found = {name: lines for name, path in _modules().items()
             if name != "charjax.kernels" and (lines := _kernel_name_comparisons(path))}
    assert found == {}, f"kernel names compared outside charjax.kernels.select: {found}"
    assert _kernel_name_comparisons(_modules()["charjax.kernels"])  # the finder finds them


def test_building_a_model_builds_no_cpp():
    """charjax.models (and what it imports) never reach the module that compiles C++."""
    import subprocess
    import sys

    code = "import sys, charjax.models; print('charjax.kernels' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.strip()
    assert out == "False"


# Callables that import or run a module given its name or path.
_LOADERS = {"spec_from_file_location", "SourceFileLoader", "import_module", "__import__",
            "run_path", "run_module", "load_source", "exec"}


def _mentions(node: ast.AST, names: set[str], words: set[str]) -> bool:
    """Whether `node` holds a path into benchmarks/, one of `words` as a string, or a
    variable in `names`."""
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and n.id in names:
            return True
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and (
                n.value in words or n.value == "benchmarks" or "benchmarks/" in n.value):
            return True
    return False


def _is_loader(func: ast.expr) -> bool:
    """sys.path.insert/append/extend, or one of _LOADERS."""
    if isinstance(func, ast.Attribute) and func.attr in ("insert", "append", "extend"):
        owner = func.value
        return (isinstance(owner, ast.Attribute) and owner.attr == "path"
                and isinstance(owner.value, ast.Name) and owner.value.id == "sys")
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in _LOADERS


def benchmark_loads(source: str, scripts: set[str]) -> list[int]:
    """Lines of a test's `source` that import a benchmarks/ script (`import gpu_check`,
    `from benchmarks.x import y`) or load one by path: a sys.path entry or an
    importlib/runpy/exec loader given benchmarks/ (or a variable built from it) or a
    script's name. Running a script as a subprocess is not loading it."""
    tree = ast.parse(source)
    tainted: set[str] = set()  # variables holding a path into benchmarks/
    while True:
        more = {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                and _mentions(node.value, tainted, set())
                for t in node.targets if isinstance(t, ast.Name)}
        if more <= tainted:
            break
        tainted |= more
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [] if node.level else [node.module or ""]
        elif isinstance(node, ast.Call) and _is_loader(node.func):
            args = [*node.args, *(k.value for k in node.keywords)]
            if any(_mentions(arg, tainted, scripts) for arg in args):
                lines.append(node.lineno)
            continue
        else:
            continue
        if any(name.split(".")[0] in scripts | {"benchmarks"} for name in names):
            lines.append(node.lineno)
    return sorted(lines)


def _benchmark_scripts() -> set[str]:
    """Module names of benchmarks/*.py that no module in tests/ shadows."""
    def stems(folder):
        return {n[:-3] for n in os.listdir(os.path.join(ROOT, folder)) if n.endswith(".py")}
    return stems("benchmarks") - stems("tests")


def test_no_test_imports_or_loads_a_benchmark_script():
    """Tests run benchmarks/ scripts as the user does, in their own process: importing them
    puts benchmarks/ on sys.path for every test after, and ties the tests to the
    scripts' insides."""
    scripts = _benchmark_scripts()
    tests = os.path.join(ROOT, "tests")
    found = {}
    for folder, _, names in os.walk(tests):
        for name in sorted(n for n in names if n.endswith(".py")):
            path = os.path.join(folder, name)
            if lines := benchmark_loads(open(path, encoding="utf-8").read(), scripts):
                found[os.path.relpath(path, ROOT)] = lines
    assert found == {}, f"tests that import or load benchmarks/ scripts (file: lines): {found}"


def test_the_benchmark_load_finder_finds_loads():
    scripts = {"gpu_check", "step_time_gpu", "adapt"}
    loads = """
import os, runpy, sys, importlib, subprocess
B = os.path.join(ROOT, "benchmarks")
SCRIPT = os.path.join(B, "gpu_check.py")
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import gpu_check
from benchmarks.step_time_gpu import plan
runpy.run_path(SCRIPT)
importlib.import_module("step_time_gpu")
sys.path.append(B)
"""
    assert benchmark_loads(loads, scripts) == [5, 6, 7, 8, 9, 10]
    runs = """
import os, subprocess, sys
from charjax import adapt
B = os.path.join(ROOT, "benchmarks")
subprocess.run([sys.executable, os.path.join(B, "gpu_check.py"), "--replay", "x.json"])
sys.path.insert(0, os.path.join(ROOT, "tests"))
cmd = []
cmd.append(os.path.join(B, "step_time.py"))
"""
    assert benchmark_loads(runs, scripts) == []


def test_imageio_decodes_and_nothing_more():
    """Framing, polarity and the scaling of gray levels live in charjax.framing alone, so an
    image cannot be prepared two ways: imageio resizes nothing, does no arithmetic on
    pixels and knows neither the frame nor the framing."""
    assert not import_graph()["charjax.imageio"] & {"charjax.framing", "charjax.charset"}
    tree = ast.parse(open(_modules()["charjax.imageio"], encoding="utf-8").read())
    called = {node.func.attr for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}
    assert called & {"open", "draft", "convert"}  # the finder sees imageio's calls
    assert not called & {"resize", "median", "clip", "pad", "zeros", "astype", "invert"}, called
    pixel_arithmetic = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.BinOp)
                        and {255, 65535} & {getattr(side, "value", None)
                                            for side in (node.left, node.right)}]
    assert pixel_arithmetic == [], f"charjax/imageio.py lines {pixel_arithmetic}"
