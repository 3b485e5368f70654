"""dvc.yaml's code deps are exactly what each stage imports: a change to plotting re-runs only
``figures``, a change to one method's model only that method's stages."""

from __future__ import annotations

from pathlib import Path

from hrr_core.interactive import pipeline_graph
from hrr_core.pipeline import deps

ROOT = Path(__file__).resolve().parents[2]


def test_dvc_yaml_code_deps_are_up_to_date():
    stale = deps.write(ROOT, dry_run=True)
    assert not stale, f"{stale} are stale: run `python -m hrr_core.pipeline.deps --write` and commit the result"


def test_the_import_closure_follows_imports_inside_functions(tmp_path):
    closure = deps.closure("hrr_core.pipeline.figures")
    names = {p.relative_to(ROOT).as_posix() for p in closure}
    assert "hrr_core/plotting.py" in names and "hrr_core/pipeline/readback.py" in names
    assert "hrr_core/training/loop.py" not in names, "figures does not train"


def _stages_reading(graph, path: str) -> set[str]:
    return {name for name, node in graph.items() if path in node.deps}


def test_plotting_reruns_only_figures_and_prepare():
    """plotting.py draws the figures and prepare's sample grid; nothing else depends on it."""
    graph = pipeline_graph(ROOT)
    assert _stages_reading(graph, "hrr_core/plotting.py") == {"figures", "prepare"}


def test_a_methods_model_reruns_only_its_own_stages():
    graph = pipeline_graph(ROOT)
    npr = _stages_reading(graph, "hrr_core/models/baselines/npr.py")
    # SAFE reuses NPR's crop_to_even: its stages read npr.py too, nothing else does
    assert npr == {f"{s}@{m}" for s in ("train", "evaluate", "study") for m in ("npr", "safe")}, npr
    hrr = _stages_reading(graph, "hrr_core/models/afr.py")
    assert {"train@hrr", "evaluate@hrr", "study@hrr", "ablate@no_msr"} <= hrr
    assert not any(n.startswith(("train@cnn", "evaluate@npr")) for n in hrr), hrr


def test_retrospect_depends_on_the_cached_methods_params_only(tiny_config):
    """Adding or changing an image-reading method leaves the retrospection caches alone; a
    profile edit outside the active profile re-runs nothing (``profiles.${profile}``)."""
    import yaml

    cached = deps.cached_params(tiny_config)
    assert "methods.hrr" in cached and "methods.cnn" not in cached
    assert deps._retrospect_params(["seed", "methods", "ablations"], tiny_config) == ["seed", *cached, "ablations"]
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = stages["retrospect"]["params"]
    assert "methods" not in params and "methods.cnn" not in params and {"methods.hrr", "methods.dire"} <= set(params)
    for name, body in stages.items():
        listed = body.get("do", body).get("params", [])
        assert "profiles" not in listed, f"{name} depends on every profile; list profiles.${{profile}}"
