"""The package's layering: schema -> library -> pipeline -> apps, imports pointing down only,
no import cycle (function-local and TYPE_CHECKING imports counted), and no method-kind string
dispatch outside the registry."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from hrr_core.pipeline.deps import _module_name, direct_imports

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hrr_core"

BASE = {"hrr_core", "hrr_core.confutil", "hrr_core.paths"}  # leaf utilities: import nothing of hrr_core
APPS = {"hrr_core.cli", "hrr_core.interactive", "hrr_core.explore", "hrr_core.explore_views", "hrr_core.report"}


def layer(module: str) -> int:
    """0 base, 1 schema, 2 library, 3 pipeline, 4 apps."""
    if module in BASE:
        return 0
    if module == "hrr_core.schema" or module.startswith("hrr_core.schema."):
        return 1
    if module == "hrr_core.pipeline" or module.startswith("hrr_core.pipeline."):
        return 3
    if module in APPS:
        return 4
    return 2


def _own_packages(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def import_graph() -> dict[str, set[str]]:
    """module -> the hrr_core modules it imports. Importing ``a.b.c`` also runs ``a`` and ``a.b``;
    that implicit edge to a package the importer itself lives in is left out (a package's
    ``__init__`` gathering its own submodules is not a cycle), every other one is kept."""
    files = {_module_name(f.resolve()): f.resolve() for f in PACKAGE.rglob("*.py")}
    return {m: {d for d in direct_imports(f) if d != m and d not in _own_packages(m)} for m, f in files.items()}


def test_imports_point_down_the_layers():
    graph = import_graph()
    upward = [
        (m, d) for m, deps in graph.items() for d in deps if layer(d) > layer(m) or (layer(m) == 0 and d != "hrr_core")
    ]
    assert not upward, "imports against the layering (schema -> library -> pipeline -> apps):\n" + "\n".join(
        f"  {m} imports {d}" for m, d in sorted(upward)
    )


def test_no_import_cycle():
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_loading_params_imports_no_torch():
    code = (
        "import sys; from hrr_core.schema import load_config; "
        "[load_config('params.yaml', p) for p in ('smoke', 'default', 'full')]; "
        "print(sorted(m for m in ('torch', 'diffusers', 'pandas', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"loading params.yaml imported {out.stdout.strip()}"


def test_no_kind_string_dispatch_outside_the_registry():
    """What a method is comes from hrr_core.methods; nothing else tests kind or baseline names."""
    from hrr_core.schema.methods import METHOD_CONFIGS

    names = "|".join(sorted({*METHOD_CONFIGS, "baseline"}))
    pattern = re.compile(
        rf"""\b(kind|baseline)\s*(==|!=)\s*["']({names})["']|\b(kind|baseline)\s+(not\s+)?in\s+\(\s*["']({names})"""
    )
    found = []
    for f in PACKAGE.rglob("*.py"):
        rel = f.relative_to(ROOT).as_posix()
        if rel.startswith(("hrr_core/schema/", "hrr_core/methods/")):
            continue
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if pattern.search(line):
                found.append(f"{rel}:{i}: {line.strip()}")
    assert not found, "method-kind string tests outside the registry:\n" + "\n".join(found)
