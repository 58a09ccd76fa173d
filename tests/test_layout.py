"""The package layout: import order between the parts, no import cycles, module sizes, names.

The parts import in one direction only::

    ledger -> events -> metrics -> evals -> rollback -> reporting -> cli

A module may import from its own part, from the parts before it, and from the base (``stats/``,
``errors.py``, the small ``_``-helpers and ``sample.py``); the base imports only the base. The
order check reads every import statement of every module, including function-level imports and
imports under ``if TYPE_CHECKING:`` (a lower part never even names a higher part's types).

The cycle check looks at the imports that run: an import under ``if TYPE_CHECKING:`` cannot
take part in a circular import at run time, so it is left out of that graph (a renderer may name
the type of what it renders). Function-level imports are included: they run too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "analysis"

BASE = 0
LAYERS = {
    "ledger": 1,
    "events": 2,
    "metrics": 3,
    "decisions": 4,
    "evals": 5,
    "rollback": 6,
    "reporting": 7,
    "cli": 8,
}
BASE_MODULES = {"errors", "_io", "_paths", "_render", "_table", "_lazy", "_yaml", "sample", "stats"}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:  # analysis/__init__.py: the public API sits above every part
        return 100
    head = parts[1]
    if head in LAYERS:
        return LAYERS[head]
    assert head in BASE_MODULES, f"{module}: unknown part; add it to tests/test_layout.py"
    return BASE


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _imports(module: str, path: Path) -> list[tuple[str, bool, int]]:
    """``(target module, type_only, line)`` for every import of ``analysis`` code in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    found: list[tuple[str, bool, int]] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "analysis":
                    found.append((alias.name, type_only, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node)
            if source.split(".")[0] == "analysis":
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    found.append((sub if sub in MODULES else source, type_only, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(tree, False)
    return found


EDGES = {m: _imports(m, p) for m, p in MODULES.items()}


def test_every_module_is_in_a_known_part() -> None:
    for module in MODULES:
        _layer(module)


def _order_violations(edges: dict[str, list[tuple[str, bool, int]]]) -> list[str]:
    wrong = []
    for module, imports in edges.items():
        for target, _type_only, line in imports:
            if target not in MODULES:
                wrong.append(f"{module}:{line}: imports {target}, which does not exist")
            elif _layer(target) > _layer(module):
                wrong.append(f"{module}:{line}: imports {target}, a higher part")
    return wrong


def test_imports_follow_the_order_of_the_parts() -> None:
    assert not _order_violations(EDGES), "\n".join(_order_violations(EDGES))


def test_the_order_check_finds_an_import_against_the_order() -> None:
    edges = {
        "analysis.ledger.model": [("analysis.events.loading", True, 3)],
        "analysis.stats.moments": [("analysis.errors", False, 4), ("analysis.metrics", False, 5)],
        "analysis.cli._main": [("analysis.rollback.planning", False, 6)],
    }
    assert _order_violations(edges) == [
        "analysis.ledger.model:3: imports analysis.events.loading, a higher part",
        "analysis.stats.moments:5: imports analysis.metrics, a higher part",
    ]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    return out


def test_no_import_cycle() -> None:
    graph = {
        m: {t for t, type_only, _ in imports if not type_only and t in MODULES and t != m}
        for m, imports in EDGES.items()
    }
    assert not _cycles(graph)


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_too_long(module: str) -> None:
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= 800, f"{MODULES[module]} has {lines} lines: split it at its seams"


def test_no_module_is_named_like_an_exported_name() -> None:
    """``from analysis.x import name`` must never return a submodule instead of the function."""
    import importlib

    clashes = []
    for module, path in MODULES.items():
        if path.name != "__init__.py":
            continue
        package = importlib.import_module(module)
        for name in getattr(package, "__all__", ()):
            if f"{module}.{name}" in MODULES:
                clashes.append(f"{module}.{name}")
    assert not clashes


def test_importing_the_api_and_the_cli_stays_light() -> None:
    """``import analysis`` and building the CLI's parser import no dataframe or numeric library.

    (The time floors, ``import analysis`` < 0.1 s and ``promptstate --help`` < 0.5 s, are
    measured by ``benchmarks/bench_import.py``, not by a timed test.)
    """
    code = (
        "import sys, analysis\n"
        "from analysis.cli import build_parser\n"
        "build_parser()\n"
        "heavy = sorted({'numpy', 'polars', 'narwhals', 'pandas', 'scipy', 'pyarrow', 'pydantic',"
        " 'matplotlib'} & set(sys.modules))\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
