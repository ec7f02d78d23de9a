"""The package's shape, checked over its source (AST, nothing imported): layers point one way, no import cycles,
nothing imports the CLI, and functions and modules stay small enough to read (DESIGN.md, "Package layout")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "foldwise"
TORCH_LIBRARIES = {"torch", "torchvision", "timm", "albumentations", "cv2", "safetensors"}
TORCH_FREE_STAGES = ("foldwise.data", "foldwise.blending", "foldwise.reporting")
MAX_FUNCTION_LINES = 50
MAX_MODULE_LINES = 300


def module_name(path: Path) -> str:
    """foldwise.data.cache for src/foldwise/data/cache.py (a package for its __init__.py)."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, name: str) -> set[str]:
    """Every module `path` imports, at the top or inside a function (absolute names; relative ones resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}  # `from pkg import module`
    return found


def internal_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (names that are not modules, e.g. functions, dropped)."""
    known = modules()
    return {name: {i for i in imports(path, name) if i in known and i != name} for name, path in known.items()}


def test_torch_free_stages_never_import_torch_or_training():
    """data, blending and reporting run where torch is not installed: no torch, timm, ... and no training module."""
    offenders = []
    for name, path in modules().items():
        if name.startswith(TORCH_FREE_STAGES):
            bad = {i for i in imports(path, name) if i.split(".")[0] in TORCH_LIBRARIES}
            bad |= {i for i in imports(path, name) if i.startswith("foldwise.training")}
            offenders += [f"{name} imports {b}" for b in sorted(bad)]
    assert not offenders, offenders


TOP = (
    "foldwise.cli",
    "foldwise.__main__",
    "foldwise.pipeline",
    "foldwise.loop",
    "foldwise.gpus",
    "foldwise.budget",
    "foldwise.clock",
)  # the loop: imports every stage
STAGES = ("foldwise.data", "foldwise.training", "foldwise.blending", "foldwise.reporting")
LAYER_RULES = {  # module prefix -> what it must not import; TOP may import anything
    "foldwise.data": ("foldwise.training", "foldwise.blending", "foldwise.reporting", *TOP),
    "foldwise.training": ("foldwise.blending", "foldwise.reporting", *TOP),
    "foldwise.blending": ("foldwise.training", "foldwise.reporting", *TOP),
    "foldwise.reporting": ("foldwise.training", *TOP),
}
BASE_BANS = STAGES + TOP  # config, errors, fileio, workspace, ...: below every stage


def test_layers_point_one_way():
    """data imports no later stage; training and blending not each other; reporting no training; nothing the CLI."""
    offenders = []
    for name, targets in internal_graph().items():
        if name in TOP:
            continue
        banned = next((bans for prefix, bans in LAYER_RULES.items() if name.startswith(prefix)), BASE_BANS)
        offenders += [f"{name} -> {t}" for t in sorted(targets) if t.startswith(banned)]
    assert not offenders, offenders


def test_no_import_cycles():
    """Import cycles (top-level or lazy) make a reader hold two modules in mind at once; there are none."""
    graph = internal_graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_functions_and_modules_stay_readable():
    """No function over 50 lines, no module over 300 (decorators and docstrings included)."""
    long_functions, long_modules = [], []
    for name, path in modules().items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                if node.end_lineno - start + 1 > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}.{node.name}: {node.end_lineno - start + 1} lines")
    assert not long_functions and not long_modules, long_functions + long_modules


def test_the_formatter_owns_the_layout():
    """No `# fmt: skip` / `# fmt: off`: ruff format's layout is the house layout."""
    marked = [
        f"{p.relative_to(SRC)}:{i}"
        for p in PACKAGE.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if "# fmt: " in line
    ]
    assert not marked, marked


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from foldwise.data import cache\n", {"foldwise.data", "foldwise.data.cache"}),
        ("def f():\n    from . import plots\n", {"foldwise.reporting", "foldwise.reporting.plots"}),
    ],
)
def test_imports_sees_lazy_and_relative_imports(tmp_path, source, expected):
    """The checker itself: an import inside a function counts, and relative imports resolve to absolute names."""
    path = tmp_path / "report.py"
    path.write_text(source)
    assert imports(path, "foldwise.reporting.report") == expected
