"""Repository conventions a fresh clone relies on."""

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    setup_and_run, tests = readme_commands()[:2]
    assert setup_and_run.endswith("dvc repro") and "pip install -e" in setup_and_run
    assert tests.endswith("pytest") and "pip install -e" in tests
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_notebooks_are_clean_parameterised_and_have_a_kernel():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 5
    for nb in notebooks:
        data = json.loads(nb.read_text())
        assert data["metadata"]["kernelspec"]["name"] == "python3", nb.name
        assert data["metadata"]["language_info"]["name"] == "python", nb.name
        code = [c for c in data["cells"] if c["cell_type"] == "code"]
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in code), nb.name
        for c in code:
            assert not c.get("outputs") and c.get("execution_count") is None, f"{nb.name}: committed with outputs"
            assert not re.search(r"^\s*(def|class)\s", "".join(c["source"]), re.M), (
                f"{nb.name}: logic belongs in hrr_core"
            )


def test_every_dvc_stage_notebook_and_param_exists():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for name, stage in dvc["stages"].items():
        stage = stage.get("do", stage)
        for dep in stage["deps"]:
            if dep.startswith("notebooks/"):
                assert (ROOT / dep).is_file(), f"{name}: {dep}"
        for key in stage.get("params", []):
            top = key.split(".")[0]
            assert top in params, f"{name}: params key {key!r} is not in params.yaml"


def test_licence_and_citation():
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert "2502.17862" in json.dumps(cff) and cff["license"] == "Apache-2.0"
    assert (ROOT / "data" / "seed" / "LICENSES.md").is_file()


def test_readme_results_match_the_metrics():
    from hrr_core.report import render_results, update_readme

    old, new = update_readme(ROOT / "README.md", render_results(ROOT))
    assert old == new, "README.md's Results section is stale: run `python -m hrr_core.report` after `dvc repro`"
