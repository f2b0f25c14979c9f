"""The library's layout rule (issue 19), read from src/nrf's source with ast.

Imports run one way: reporting -> experiments/volumes/decoding -> training ->
models -> features/data -> the top-level infrastructure and maths modules.

(a) no function-level import of nrf: a function-level import may only defer an
    optional heavy third-party dependency, never dodge a cycle;
(b) each function-level third-party import says why it is deferred: a comment on
    its line, or on the line just above the run of import lines it belongs to
    (one comment may head a block of imports);
(c) src/nrf holds at most 12 top-level modules (``*.py`` beside ``__init__.py``;
    everything else lives in the subpackages);
(d) the nrf modules' import graph (imports that run when a module is imported:
    everything outside functions) has no cycle;
(e) nothing in nrf.models opens a file: models take arrays and tensors; reading
    and writing them is the training, data and features modules' work.
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
PACKAGE = SRC / "nrf"
STDLIB = set(sys.stdlib_module_names)
MAX_TOP_LEVEL_MODULES = 12
#: calls that read or write files, by the name they are called with
FILE_CALLS = {"open", "h5py.File", "torch.load", "torch.save", "read_features", "load_prepared"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def _rel(name: str) -> str:
    return MODULES[name].relative_to(REPO).as_posix()


def _imported(node: ast.Import | ast.ImportFrom, module: str) -> list[str]:
    """The absolute names an import statement names (a relative one resolved against ``module``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
        return [f"{base}.{node.module}" if node.module else base]
    return [node.module]


def _function_imports(tree: ast.AST):
    """(function node, import node) for every import written inside a function or method."""
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(func):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    yield func, node


def _module_level_imports(tree: ast.AST):
    """Import nodes that run when the module is imported (not inside a function)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))


def _comment_lines(path: Path) -> set[int]:
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return {tok.start[0] for tok in tokens if tok.type == tokenize.COMMENT}


def test_the_scan_sees_the_library():
    assert len(MODULES) > 50 and "nrf.reporting.style" in MODULES and "nrf" in MODULES


def test_a_no_function_level_import_of_nrf():
    found = [
        f"{_rel(module)}:{node.lineno} in {func.name}(): imports {name}"
        for module, tree in TREES.items()
        for func, node in _function_imports(tree)
        for name in _imported(node, module)
        if name.partition(".")[0] == "nrf"
    ]
    assert not found, "import nrf modules at the module's top (a cycle is a layout fault, not to be dodged):\n  " \
        + "\n  ".join(found)


def test_b_every_deferred_third_party_import_says_why():
    missing = []
    for module, tree in TREES.items():
        comments = _comment_lines(MODULES[module])
        imports = list(_function_imports(tree))
        import_lines = {line for _, node in imports for line in range(node.lineno, node.end_lineno + 1)}
        for func, node in imports:
            names = [n for n in _imported(node, module) if n.partition(".")[0] not in STDLIB | {"nrf"}]
            if not names:
                continue
            first = node.lineno
            while first - 1 in import_lines:  # the top of this run of import lines
                first -= 1
            own = set(range(node.lineno, node.end_lineno + 1))
            if not (own | {first - 1}) & comments:
                missing.append(f"{_rel(module)}:{node.lineno} in {func.name}(): {', '.join(names)}")
    assert not missing, ("a function-level import of a third-party package needs a comment saying which "
                         "heavy/optional dependency it defers and why:\n  " + "\n  ".join(missing))


def test_c_few_top_level_modules():
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"src/nrf has {len(top)} top-level modules: {top}"


def _import_graph() -> dict[str, set[str]]:
    graph = {module: set() for module in MODULES}
    for module, tree in TREES.items():
        for node in _module_level_imports(tree):
            for name in _imported(node, module):
                if name.partition(".")[0] != "nrf":
                    continue
                targets = [name]
                if isinstance(node, ast.ImportFrom):  # ``from nrf.data import nsd_layout`` names a module
                    targets = [f"{name}.{a.name}" if f"{name}.{a.name}" in MODULES else name for a in node.names]
                graph[module].update(t for t in targets if t in MODULES and t != module)
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, path = {}, []  # state: 1 on the current path, 2 done

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_d_no_import_cycle():
    graph = _import_graph()
    assert graph["nrf.reporting.fig_volume"] >= {"nrf.reporting.brain_maps", "nrf.reporting.style"}
    assert "nrf.data.nsd_layout" in graph["nrf.config"]
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_d_the_cycle_finder_finds_one():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def _call_name(func: ast.expr) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("nrf.models")))
def test_e_models_open_no_files(module):
    calls = [
        f"{_rel(module)}:{node.lineno}: {_call_name(node.func)}(...)"
        for node in ast.walk(TREES[module])
        if isinstance(node, ast.Call)
        and (_call_name(node.func) in FILE_CALLS
             or _call_name(node.func).rpartition(".")[2] in {"open", "read_features", "load_prepared"})
    ]
    assert not calls, "nrf.models takes arrays, it does not read or write files:\n  " + "\n  ".join(calls)
