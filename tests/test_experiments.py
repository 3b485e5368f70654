"""The experiment loop of the README ("Experiments"), run as a user would on the smoke profile.

In a copy of the shared smoke baseline (conftest.py's ``smoke_repo``, its outputs committed),
``dvc exp run -S`` changes one parameter and reruns only the stages it touches; then
``dvc exp show``, ``dvc exp diff``, ``dvc params diff`` and ``dvc metrics diff`` must show the
experiment beside the baseline, ``dvc plots diff`` must write HTML whose local files exist, and
``dvc plots show`` must carry DVCLive's training curves. tests/test_readme_commands.py checks
that README's block holds exactly the commands of ``LOOP``.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXPERIMENT = "lower-c"
PARAM, OLD, NEW = "methods.spectrum_lr.model.C", 1.0, 0.001  # a cheap stage: a logistic regression's fit
LOOP = (
    f"dvc exp run -n {EXPERIMENT} -S {PARAM}={NEW}",
    "dvc exp show --only-changed",
    "dvc exp diff",
    "dvc params diff",
    "dvc metrics diff",
    "dvc plots diff HEAD",
    "dvc plots show",
)
CDN = (
    "https://cdn.jsdelivr.net/npm/vega@",
    "https://cdn.jsdelivr.net/npm/vega-lite@",
    "https://cdn.jsdelivr.net/npm/vega-embed@",
)  # dvc-render's vega scripts (a browser needs the network)
TRAINED = ("cnn", "hrr", "cnnspot", "npr", "univfd", "dire")  # methods with a training loop (DVCLive logs)


@pytest.fixture(scope="module")
def experiment(smoke_repo, tmp_path_factory):
    """(repo, {command: its stdout}): the baseline committed in a copy, then every command of LOOP."""
    repo = smoke_repo.copy_to(tmp_path_factory.mktemp("experiments") / "repo")
    for key, value in (("user.name", "t"), ("user.email", "t@t"), ("commit.gpgsign", "false")):
        repo.run("git", "config", key, value)  # dvc exp run commits the experiment with this identity
    repo.git("add", "-A")
    repo.git("commit", "-qm", "smoke baseline")
    shown = {}
    for command in LOOP:
        args = shlex.split(command)
        shown[command] = repo.dvc(*args[1:], timeout=1800).stdout
    return repo, shown


def _specs(html: str) -> list[dict]:
    """The vega-lite specs dvc-render embeds (``var spec = {...};`` per plot)."""
    return [json.loads(m) for m in re.findall(r"var spec = (\{.*?\});\n\s*vegaEmbed", html, re.S)]


def _local_references(html: str) -> list[str]:
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    return [r for r in refs if not r.startswith(("http://", "https://", "data:", "#"))]


def test_exp_run_reruns_only_the_touched_stages(experiment):
    _, shown = experiment
    ran = re.findall(r"Running stage '([^']+)'", shown[LOOP[0]])
    assert "train@spectrum_lr" in ran and "evaluate@spectrum_lr" in ran, ran
    assert not any(s.endswith("@cnn") or s.startswith("ablate@") for s in ran), f"untouched stages reran: {ran}"


def test_exp_show_lists_the_experiment_beside_the_baseline(experiment):
    repo, shown = experiment
    table = shown[LOOP[1]]
    # a wide table: without a terminal DVC drops the columns past ~1000 characters (sorted by name: with seven
    # families the per-family columns come before heldout.*), so the text must show the experiment beside the
    # workspace with the method's changed metrics; the values (the headline included) are read from --json
    changed = "metrics/evaluate/spectrum_lr.json:"
    assert EXPERIMENT in table and "workspace" in table and changed in table, table
    rows = json.loads(repo.dvc("exp", "show", "--json").stdout)
    workspace, head = rows[0], rows[1]  # the workspace (it holds the experiment), then HEAD with its experiments
    exp = next(e for e in head["experiments"] if e["name"] == EXPERIMENT)["revs"][0]

    def values(row: dict) -> tuple[float, dict]:
        data = row["data"]
        param = data["params"]["params.yaml"]["data"]["methods"]["spectrum_lr"]["model"]["C"]
        return param, data["metrics"]["metrics/evaluate/spectrum_lr.json"]["data"]["heldout"]["mean"]

    (c_head, mean_head), (c_exp, mean_exp) = values(head), values(exp)
    assert workspace["rev"] == "workspace" and (c_head, c_exp, values(workspace)[0]) == (OLD, NEW, NEW)
    carried = {"ap", "auc", "acc", "tpr_at_fpr", "ece"}
    assert set(mean_head) == set(mean_exp) >= carried, "both rows carry the same metrics"


def test_exp_diff_and_params_diff_show_the_change(experiment):
    _, shown = experiment
    for command in (LOOP[2], LOOP[3]):
        text = shown[command]
        assert PARAM in text and str(OLD) in text and str(NEW) in text, (command, text)
    changed = shown[LOOP[2]] + shown[LOOP[4]]
    assert "metrics/evaluate/spectrum_lr.json" in changed, "a metric of the touched method changed"


def test_plots_diff_writes_html_whose_plots_load(experiment):
    repo, shown = experiment
    assert "dvc_plots" in shown[LOOP[5]]
    repo.dvc("plots", "diff", "HEAD", "-o", "diff_plots")  # kept apart: `dvc plots show` rewrites dvc_plots/
    page = repo.root / "diff_plots" / "index.html"
    html = page.read_text()
    local = _local_references(html)
    missing = [ref for ref in local if not (page.parent / ref).is_file()]
    assert local and not missing, f"{page} references missing files: {missing}"
    remote = re.findall(r"""src\s*=\s*["'](https?://[^"']+)["']""", html)
    assert remote and all(r.startswith(CDN) for r in remote), remote
    specs = _specs(html)
    assert specs and all(s["data"]["values"] for s in specs), "every vega plot embeds its data"
    revs = {v.get("rev") for s in specs for v in s["data"]["values"]}
    assert {"HEAD", "workspace"} <= revs, revs


def test_plots_show_has_the_dvclive_training_curves(experiment):
    repo, shown = experiment
    page = Path(re.search(r"file://(\S+index\.html)", shown[LOOP[6]]).group(1))
    specs = _specs(page.read_text())
    titles = {s["title"]["text"]: s for s in specs if isinstance(s.get("title"), dict)}
    missing = [m for m in TRAINED if f"models/{m}/live/plots/metrics/val/ap.tsv" not in titles]
    assert not missing, f"no DVCLive validation-AP curve for {missing} in {page}"
    points = titles["models/hrr/live/plots/metrics/train/loss.tsv"]["data"]["values"]
    assert points and all(float(v["step"]) >= 1 and float(v["loss"]) > 0 for v in points), points
