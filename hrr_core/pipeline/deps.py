"""The code each DVC stage runs: the transitive closure of ``hrr_core`` imports of its stage
module (and, for a method's stages, of the method's registry entry), read from the source.

``dvc.yaml`` lists exactly these files as each stage's code ``deps``, so a change to plotting
re-runs only ``figures`` and a change to one method's model re-runs only that method's stages.
``python -m hrr_core.pipeline.deps`` prints them; ``--write`` updates ``dvc.yaml`` in place;
``tests/pipeline/test_deps.py`` fails when ``dvc.yaml`` is stale. The ``retrospect`` stage's
``methods.<m>`` params are generated too: exactly the methods it caches inputs for, so adding
or changing an image-reading method does not recompute the retrospection caches.

Every ``import`` counts, at module level or inside a function. ``importlib`` look-ups by name
are not seen: the registry's (``hrr_core.methods.get``) are added per method here.
"""

from __future__ import annotations

import argparse
import ast
import io
from functools import cache
from pathlib import Path

import yaml as pyyaml
from ruamel.yaml import YAML

from hrr_core.paths import project_root
from hrr_core.pipeline import STAGES
from hrr_core.schema import load_config

PACKAGE = "hrr_core"


def _package_root() -> Path:
    return Path(__file__).resolve().parents[1]


def module_file(module: str) -> Path | None:
    """The source file of ``hrr_core.x.y`` (a module or a package's ``__init__``), or None."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = _package_root().joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(file: Path) -> str:
    rel = file.relative_to(_package_root().parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def direct_imports(file: Path) -> frozenset[str]:
    """Every ``hrr_core`` module ``file`` imports (``from a import b`` counts ``a.b`` when it is a module)."""
    tree = ast.parse(file.read_text(), str(file))
    here = _module_name(file)
    pkg = here if file.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    out = set()
    for name in found:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c imports a and a.b too
            prefix = ".".join(parts[:i])
            if module_file(prefix) is not None:
                out.add(prefix)
    return frozenset(out)


def closure(*modules: str) -> set[Path]:
    """The files of ``modules`` and of everything they import from ``hrr_core``, transitively."""
    todo = [m for m in modules]
    seen: set[Path] = set()
    while todo:
        f = module_file(todo.pop())
        if f is None or f in seen:
            continue
        seen.add(f)
        todo.extend(direct_imports(f))
    return seen


def as_deps(files: set[Path], root: Path | None = None) -> list[str]:
    """Sorted POSIX paths relative to the project root."""
    base = root or _package_root().parent
    return sorted(f.relative_to(base).as_posix() for f in files)


# ---------------------------------------------------------------- what dvc.yaml should list

METHOD_STAGES = ("train", "evaluate", "study")  # foreach over methods: their item adds the method's own code
CODE_FILE = "dvc.code.yaml"  # dvc.yaml's vars file holding each method's own code (generated)
SLOT = "c{:02d}"  # foreach items carry a fixed number of code slots (DVC deps cannot interpolate a list)


def stage_code(stage: str) -> list[str]:
    """The code ``dvc.yaml``'s stage ``stage`` lists (its module's closure; ``ablate`` also HRR's)."""
    files = closure(f"{PACKAGE}.pipeline.{stage}")
    if stage == "ablate":  # every ablation row is an HRR variant
        files |= closure(f"{PACKAGE}.methods.hrr")
    return as_deps(files)


def method_code(methods: dict[str, str]) -> dict[str, list[str]]:
    """Each method's own code (its registry entry's closure beyond what every method stage
    lists), keyed by method name; ``methods`` maps a method to its registry name."""
    common = set.intersection(*(closure(f"{PACKAGE}.pipeline.{s}") for s in METHOD_STAGES))
    return {m: as_deps(closure(f"{PACKAGE}.methods.{reg}") - common) for m, reg in methods.items()}


def code_slots(code: dict[str, list[str]]) -> dict[str, dict[str, str]]:
    """``code`` as fixed-width items ``{c00: file, c01: file, ...}``, short lists padded by
    repeating their first file."""
    width = max(len(v) for v in code.values())
    return {
        m: {SLOT.format(i): (files[i] if i < len(files) else files[0]) for i in range(width)}
        for m, files in code.items()
    }


def cached_params(cfg) -> list[str]:
    """The ``methods.<m>`` params of the ``retrospect`` stage: every method whose inputs it
    caches (the registry's ``reads``), and ``methods.hrr`` for the ablation rows."""
    from hrr_core import methods  # the registry imports the model modules (torch)

    names = [m for m in cfg.methods if methods.spec_of(cfg, m).reads != "images"]
    if cfg.ablation_run and "hrr" not in names:
        names.append("hrr")
    return [f"methods.{m}" for m in names]


def expected(project: Path) -> tuple[dict[str, list[str]], dict]:
    """(code deps per stage, the content of ``dvc.code.yaml``) for the project's params.yaml."""

    cfg = load_config(project / "params.yaml")
    names = {m: cfg.method(m).name for m in cfg.methods}
    return {s: stage_code(s) for s in STAGES}, {"method_code": code_slots(method_code(names))}


def _retrospect_params(params: list, cfg) -> list:
    """``params`` with its ``methods`` / ``methods.<m>`` entries replaced by :func:`cached_params`,
    at the place of the first one."""
    is_methods = [isinstance(p, str) and (p == "methods" or p.startswith("methods.")) for p in params]
    at = is_methods.index(True) if any(is_methods) else len(params)
    keep = [p for p, m in zip(params, is_methods) if not m]
    return keep[:at] + cached_params(cfg) + keep[at:]


def write(project: Path, dry_run: bool = False) -> list[str]:
    """Rewrite the ``hrr_core/`` entries of every stage's deps in ``dvc.yaml`` (comments kept) and
    ``dvc.code.yaml``; returns what changed (``dry_run``: only says what would change)."""
    stages, code = expected(project)
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    path = project / "dvc.yaml"
    doc = yaml.load(path.read_text())
    changed = []
    for name, body in doc["stages"].items():
        body = body.get("do", body)
        deps = body["deps"]
        keep = [
            d
            for d in deps
            if not (isinstance(d, str) and (d.startswith(f"{PACKAGE}/") or d == PACKAGE or d.startswith("${item.c")))
        ]
        new = keep + stages[name]
        if name in METHOD_STAGES:
            width = len(next(iter(code["method_code"].values())))
            new += ["${item." + SLOT.format(i) + "}" for i in range(width)]
        if list(deps) != new:
            changed.append(f"dvc.yaml: stages.{name}.deps")
            deps.clear()
            deps.extend(new)
        if name == "retrospect":
            params, cfg = body["params"], load_config(project / "params.yaml")
            wanted = _retrospect_params(list(params), cfg)
            if list(params) != wanted:
                changed.append(f"dvc.yaml: stages.{name}.params")
                params.clear()
                params.extend(wanted)
    buf = io.StringIO()
    yaml.dump(doc, buf)
    if changed and not dry_run:
        path.write_text(buf.getvalue())
    header = (
        "# Generated by `python -m hrr_core.pipeline.deps --write` (do not edit): the code each method's\n"
        "# train/evaluate/study stages run beyond their stage module, as fixed code slots for dvc.yaml's foreach.\n"
    )
    text = header + pyyaml.safe_dump(code, sort_keys=False)
    if not (project / CODE_FILE).exists() or (project / CODE_FILE).read_text() != text:
        changed.append(CODE_FILE)
        if not dry_run:
            (project / CODE_FILE).write_text(text)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hrr_core.pipeline.deps", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update dvc.yaml and dvc.code.yaml in place")
    args = parser.parse_args(argv)
    root = project_root()
    if args.write:
        print("\n".join(write(root)) or "dvc.yaml is up to date")
        return 0
    stages, code = expected(root)
    for name, files in stages.items():
        print(f"{name}: {len(files)} files")
    for m, slots in code["method_code"].items():
        print(f"{m}: {sorted(set(slots.values()))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
