"""hrr_core.explore and hrr_core.explore_views on hand-made tables, a tiny HRR checkpoint and a
temporary git repository."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from hrr_core import explore, explore_views
from hrr_core.card import write_detector_card
from hrr_core.confutil import to_dict
from hrr_core.data.manifest import write_manifest
from hrr_core.inference import load_detector
from hrr_core.models.afr import AdditiveFeatureRefinement, AFRConfig
from hrr_core.models.backbones import BackboneConfig
from hrr_core.models.hrr import HRRConfig, HRRDetector
from hrr_core.models.ldm import LatentDiffusion, LDMConfig
from hrr_core.models.msr import MSRConfig
from hrr_core.training.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def _results(method: str, ap: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "method": method,
            "train": "vae",
            "test": ["vae", "vae", "gan"],
            "size": ["all", "64", "all"],
            "n": 4,
            "acc": 0.5,
            "ap": [ap, ap - 0.1, ap - 0.2],
        }
    )


@pytest.fixture()
def project(tmp_path) -> Path:
    """results/ for two methods (one with a study table), scores and a manifest of 4 test images."""
    for m, ap in (("cnn", 0.9), ("hrr", 0.8)):
        (tmp_path / "results" / m).mkdir(parents=True)
        _results(m, ap).to_csv(tmp_path / "results" / m / "results.csv", index=False)
        pd.DataFrame({"id": ["r0", "r1", "f0", "f1"], "logit": 0.0, "score": [0.1, 0.7, 0.95, 0.3]}).to_csv(
            tmp_path / "results" / m / "scores.csv", index=False
        )
    study = pd.concat(
        [
            _results("cnn", 0.9).assign(condition="none", level=0, seed=0),
            _results("cnn", 0.6).assign(condition="jpeg", level=75, seed=0),
        ]
    )
    (tmp_path / "results" / "study" / "cnn").mkdir(parents=True)
    study.to_csv(tmp_path / "results" / "study" / "cnn" / "study.csv", index=False)
    rows = [
        (i, label, gen, w)
        for i, label, gen, w in (
            ("r0", 0, "real", 64),
            ("r1", 0, "real", 96),
            ("f0", 1, "vae", 64),
            ("f1", 1, "gan", 96),
        )
    ]
    write_manifest(
        pd.DataFrame(
            {
                "id": [r[0] for r in rows],
                "path": [f"images/{r[0]}.png" for r in rows],
                "label": [r[1] for r in rows],
                "generator": [r[2] for r in rows],
                "source": "s",
                "split": "test",
                "width": [r[3] for r in rows],
                "height": [r[3] for r in rows],
                "format": "png",
                "sha256": "",
            }
        ),
        tmp_path / "data" / "embedded" / "manifest.csv",
    )
    return tmp_path


def test_metrics_add_the_study_table_when_present(project):
    table = explore.load_metrics(project)
    assert explore.find_methods(project) == ["cnn", "hrr"]
    cnn = table[table["method"] == "cnn"]
    assert sorted(cnn["condition"].unique()) == ["jpeg", "none"] and len(cnn) == 3 + 6  # main run + study rows
    hrr = table[table["method"] == "hrr"]
    assert (hrr["condition"] == "none").all() and (hrr["level"] == 0).all() and len(hrr) == 3
    jpeg = explore.filter_rows(table, method="cnn", condition="jpeg", size="all", test=explore.ANY)
    assert jpeg["ap"].round(3).tolist() == [0.6, 0.4]
    assert explore.options(table, "size", "all") == ["all", "64"]
    assert explore.options(table, "condition", "none") == ["none", "jpeg"]


def test_a_study_table_without_its_columns_is_refused(project):
    (project / "results" / "study" / "hrr").mkdir(parents=True)
    _results("hrr", 0.8).to_csv(project / "results" / "study" / "hrr" / "study.csv", index=False)
    with pytest.raises(ValueError, match=r"study.csv: missing columns \['condition', 'level', 'seed'\]"):
        explore.load_metrics(project)
    with pytest.raises(FileNotFoundError, match="no results/<method>/results.csv"):
        explore.load_metrics(project / "elsewhere")


def test_predictions_and_the_most_confident_mistakes(project):
    preds = explore.load_predictions(project, "hrr", threshold=0.5)
    assert preds.set_index("id")["correct"].to_dict() == {"r0": True, "r1": False, "f0": True, "f1": False}
    assert Path(preds["path"].iloc[0]).is_absolute()
    mistakes = explore.confident_mistakes(preds, n=5)
    assert mistakes["id"].tolist() == ["f1", "r1"] and mistakes["margin"].round(2).tolist() == [0.2, 0.2]
    only_gan = explore.filter_rows(preds, generator="gan")  # gan's fakes and every real
    assert sorted(only_gan["id"]) == ["f1", "r0", "r1"]
    assert explore.confident_mistakes(explore.filter_rows(preds, size="96"), 1)["id"].tolist() == ["f1"]
    with pytest.raises(KeyError, match="cannot filter on 'colour'"):
        explore.filter_rows(preds, colour="red")


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def test_compare_commits_diffs_every_method_metric(tmp_path):
    folder = tmp_path / "metrics" / "evaluate"
    folder.mkdir(parents=True)
    (folder / "cnn.json").write_text(json.dumps({"mean": {"ap": 0.5, "acc": 0.5}, "profile": "smoke"}))
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "one")
    (folder / "cnn.json").write_text(json.dumps({"mean": {"ap": 0.75, "acc": 0.5}, "profile": "smoke"}))
    (folder / "hrr.json").write_text(json.dumps({"mean": {"ap": 0.25}, "vae": {"ap": 0.5}}))
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "two")
    table = explore.compare_commits(tmp_path, "HEAD~1", "HEAD")
    assert list(table.columns) == ["method", "test", "metric", "a: HEAD~1", "b: HEAD", "delta"]
    got = {tuple(r[:3]): r[5] for r in table.itertuples(index=False)}
    assert got[("cnn", "mean", "ap")] == 0.25 and got[("cnn", "mean", "acc")] == 0.0
    assert np.isnan(got[("hrr", "vae", "ap")]) and len(table) == 4
    changed = explore.compare_commits(tmp_path, "HEAD~1", "HEAD", changed_only=True)
    assert sorted(changed["method"] + "/" + changed["test"]) == ["cnn/mean", "hrr/mean", "hrr/vae"]
    with pytest.raises(ValueError, match="git ls-tree .* failed .* pass revisions that exist"):
        explore.compare_commits(tmp_path, "nope", "HEAD")
    assert explore_views.compare_or_note(tmp_path / "metrics", "nope", "HEAD").startswith("no commit comparison")


def test_afr_survival_marks_the_groups_the_proximal_step_zeroed():
    torch.manual_seed(0)
    afr = AdditiveFeatureRefinement(4, AFRConfig(num_anchors=3))
    with torch.no_grad():
        afr.alpha.copy_(torch.tensor([[0.3, 0.0, 0.4], [0.01, 0.0, 0.0], [0.0, -2.0, 0.0], [0.0, 0.0, 0.02]]))
    afr.proximal_step(0.05)  # groups with norm <= 0.05 die
    model = SimpleNamespace(afr=afr)
    table = explore_views.afr_survival(model)
    assert table["dim"].tolist() == [2, 0, 1, 3] and table["survived"].tolist() == [True, True, False, False]
    assert table["group_norm"].tolist()[:2] == pytest.approx([1.95, 0.45]) and table.loc[0, "peak_anchor"] == 0.0
    assert explore_views.afr_figure(model).axes[0].get_title() == "AFR: 2 of 4 dimensions survived"
    assert explore_views.afr_survival(SimpleNamespace(afr=None)).empty


def test_controls_render_statically_with_the_first_choices():
    calls = []
    mode = explore_views.controls(
        lambda **kw: calls.append(kw), {"method": ["(any)", "cnn"], "size": ["all", "64"]}, use_widgets=False
    )
    assert mode == "static" and calls == [{"method": "(any)", "size": "all"}]


def test_controls_use_dropdowns_when_ipywidgets_is_installed():
    pytest.importorskip("ipywidgets")
    calls = []
    mode = explore_views.controls(lambda **kw: calls.append(kw), {"size": ["all", "64"]}, use_widgets=True)
    assert mode == "widgets" and calls == [{"size": "all"}], "the widget renders its defaults at once"


class _HalfLDM:
    """A stand-in retrospection model: x^ = 0.9 x~, so the residual is 0.1 x~."""

    def img2img(self, x, strength, num_steps, generator=None):
        return 0.9 * x


def test_scale_view_matches_the_detector_on_the_same_file(tmp_path):
    torch.manual_seed(0)
    msr = MSRConfig(scale_factors=(1.0, 2.0), base_size=32, input_size=32, num_steps=1, representation="residual+image")
    cfg = HRRConfig(backbone=BackboneConfig(name="small_resnet", pretrained=False, width=4, in_channels=6), msr=msr)
    ldm_dir = LatentDiffusion.create(LDMConfig(space="pixel", norm_num_groups=4, unet_block_out_channels=(8, 8))).save(
        tmp_path / "ldm"
    )
    save_checkpoint(
        tmp_path / "m" / "best", HRRDetector(cfg).eval(), None, None, None, 0, 0, None, {"model": to_dict(cfg)}
    )
    write_detector_card(
        tmp_path / "m",
        method="tiny",
        kind="hrr",
        baseline=None,
        model_config=to_dict(cfg),
        train_generators=["g"],
        profile="smoke",
        threshold=0.5,
        val_metrics={},
        data_summary={},
        retrospection_ldm_dir=ldm_dir,
    )
    detector = load_detector(tmp_path / "m", "cpu")
    detector.ldm = _HalfLDM()
    image = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(image)
    view = explore_views.scale_view(detector, image)
    assert view["image"].shape == (40, 48, 3) and view["scales"].shape == (2, 32, 32, 3)
    assert np.allclose(view["residuals"], 0.1 * view["scales"].mean(axis=-1), atol=1e-6)
    assert view["scale_probs"].shape == (2,) and view["factors"] == [1.0, 2.0]
    assert view["prob"] == pytest.approx(detector.predict_paths([image]).results["prob_generated"][0], abs=1e-6)
    fig = explore_views.mistakes_figure(
        pd.DataFrame({"generator": ["g"], "size": ["40"], "label": [1], "score": [0.2]}), [view]
    )
    assert [ax.get_title().split("\n")[0] for ax in fig.axes] == ["g 40px", "x1 residual", "x2 residual"]
