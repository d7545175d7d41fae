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
    # the core: state is used by training, evaluation, checkpoints and the projector
    for user in ("charjax.train", "charjax.evaluate", "charjax.checkpoints",
                 "charjax.reporting.projector"):
        assert "charjax.state" in graph[user], user
    assert {"charjax.checkpoints", "charjax.evaluate"} <= graph["charjax.train"]
    for module, imported in graph.items():
        if module != "charjax.__main__":
            assert "charjax.cli" not in imported, f"{module} imports the CLI"
        if module not in ("charjax.ensemble", "charjax.cli"):
            assert "charjax.train" not in imported, f"{module} imports the trainer"


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
