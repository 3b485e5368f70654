import numpy as np
import pandas as pd
import pytest

from hrr_core.benchmark.splits import kfold_assignments
from hrr_core.confutil import ConfigError
from hrr_core.pipeline.study import fold_manifests, robustness_sample, study_runs, summarise, variant
from hrr_core.schema import config_from_dict


@pytest.fixture()
def cfg(tiny_config):
    """tests/conftest.py's tiny study config (seeds [0, 1], cross_train [ldm_img2img, pixel_ddpm])."""
    return tiny_config


def test_study_runs_put_the_main_model_first_without_duplicates(cfg):
    runs = study_runs(cfg, "hrr")
    main = (tuple(cfg.method("hrr").train_generators), cfg.train_config("hrr").seed)
    assert runs[0] == main and len(runs) == len(set(runs))
    assert {s for t, s in runs if t == main[0]} == set(cfg.study.seeds) | {main[1]}
    assert {t for t, _ in runs} == {main[0]} | {(f,) for f in cfg.study.cross_train}
    assert {s for _, s in study_runs(cfg, "spectrum_lr")} == {main[1]}  # deterministic fit: one seed


def test_variant_changes_only_the_method_seed_and_generators(cfg):
    v = variant(cfg, "cnn", ("gan_upsampler",), 7)
    assert v.method("cnn").train_generators == ("gan_upsampler",) and v.train_config("cnn").seed == 7
    assert cfg.method("cnn").train_generators == ("ldm_img2img",) and cfg.train_config("cnn").seed == 0
    assert v.method("hrr") == cfg.method("hrr")


def test_cross_train_must_name_benchmark_families(make_params):
    with pytest.raises(ConfigError, match="study.cross_train"):
        config_from_dict(make_params(study={"cross_train": ["dalle"]}))


def test_robustness_sample_takes_per_cell_of_each_class_and_generator_over_the_sizes():
    rows = [
        {"id": f"{g}{y}{w}-{i}", "label": y, "generator": g, "width": w}
        for g, y in (("real", 0), ("a", 1), ("b", 1))
        for w in (64, 128)
        for i in range(20)
    ]
    rows += [{"id": f"c1-{i}", "label": 1, "generator": "c", "width": 64} for i in range(3)]  # a small cell
    test = pd.DataFrame(rows)
    s = robustness_sample(test, 10, seed=0)
    assert s.groupby("generator").size().to_dict() == {"real": 10, "a": 10, "b": 10, "c": 3}
    assert s[s["generator"] != "c"].groupby(["generator", "width"]).size().eq(5).all()  # even over the sizes
    assert s["id"].tolist() == robustness_sample(test, 10, seed=0)["id"].tolist()
    assert s["id"].tolist() != robustness_sample(test, 10, seed=1)["id"].tolist()
    assert len(robustness_sample(test, None, 0)) == len(test)


def test_kfold_assignments_test_every_group_once_and_keep_splits_apart():
    groups = [f"p{i}" for i in range(11)]
    folds = kfold_assignments(groups + groups[:3], 4, seed=0)  # repeats are one group
    assert len(folds) == 4 and all(set(f) == set(groups) for f in folds)
    tested = [g for f in folds for g, split in f.items() if split == "test"]
    assert sorted(tested) == sorted(groups)  # each group a test group of exactly one fold
    for f in folds:
        assert {"train", "val", "test"} == set(f.values())
    assert folds == kfold_assignments(list(reversed(groups)), 4, seed=0)  # order does not matter
    with pytest.raises(ValueError, match="k-fold"):
        kfold_assignments(groups[:2], 3, 0)


def test_fold_manifests_resplit_by_photo_and_leave_the_style_collection_out():
    rows = [
        {
            "id": f"{p}-{y}",
            "source": p,
            "label": y,
            "generator": "real" if y == 0 else "a",
            "split": "train",
            "collection": "palapeli-data" if p == "p5" else "skimage",
        }
        for p in ("p0", "p1", "p2", "p3", "p4", "p5")
        for y in (0, 1)
    ]
    manifest = pd.DataFrame(rows)
    folds = fold_manifests(manifest, 3, seed=0, style=("palapeli-data",))
    assert all("p5" not in fm["source"].values for fm in folds)
    for fm in folds:  # a photo's real and fake share a split
        assert (fm.groupby("source")["split"].nunique() == 1).all() and set(fm["split"]) == {"train", "val", "test"}
    tested = pd.concat([fm[fm["split"] == "test"] for fm in folds])
    assert sorted(tested["id"]) == sorted(manifest.loc[manifest["source"] != "p5", "id"])


def _row(train, test, seed, ap, condition="none", level=0.0, acc=0.5, held_out=True, photos="all"):
    return {
        "method": "m",
        "train": train,
        "test": test,
        "held_out": held_out,
        "photos": photos,
        "size": "all",
        "condition": condition,
        "level": level,
        "seed": seed,
        "acc": acc,
        "real_acc": acc,
        "fake_acc": acc,
        "ap": ap,
        "auc": ap,
        "tpr_at_fpr": acc,
        "ece": 0.1,
        "acc_at05": acc,
    }


def test_summarise_hand_computed(cfg):
    main = "+".join(cfg.method("cnn").train_generators)
    rows = [
        _row(main, "x", 0, 0.8),
        _row(main, "y", 0, 0.6),  # seed 0 mean 0.7
        _row(main, "x", 1, 0.9),
        _row(main, "y", 1, 0.7),  # seed 1 mean 0.8
        _row(main, "z", 0, 0.99, held_out=False),  # in-family: reported apart, never in the headline
        _row(main, "z", 1, 0.97, held_out=False),
        _row(main, "x", 0, 0.4, photos="style_shift"),  # photo subsets: never in the headline either
        _row(main, "x", 1, 0.6, photos="style_shift"),
        _row("gan_upsampler", "x", 0, 0.5),
        _row("gan_upsampler", "y", 0, 0.7),
        _row(main, "x", 0, 0.9, "clean"),
        _row(main, "y", 0, 0.7, "clean"),
        _row(main, "x", 0, 0.6, "harmonise", 64.0),
        _row(main, "y", 0, 0.6, "harmonise", 64.0),
        _row(main, "x", 0, 0.7, "jpeg", 50.0),
        _row(main, "y", 0, 0.5, "jpeg", 50.0),
        _row(main, "x", 0, 0.6, "fold", 0.0),  # k-fold: fold 0 mean 0.5, fold 1 mean 0.7
        _row(main, "y", 0, 0.4, "fold", 0.0),
        _row(main, "x", 0, 0.8, "fold", 1.0),
        _row(main, "y", 0, 0.6, "fold", 1.0),
        _row(main, "z", 0, 0.1, "fold", 1.0, held_out=False),  # in-family: not in the k-fold mean
    ]
    out = summarise(pd.DataFrame(rows), cfg, "cnn")
    assert out["seeds"] == [0, 1]
    assert out["headline"]["ap"]["mean"] == pytest.approx(0.75)
    assert out["headline"]["ap"]["std"] == pytest.approx(np.std([0.7, 0.8], ddof=1), abs=1e-4)
    assert out["in_family"]["ap"]["mean"] == pytest.approx(0.98)
    assert out["photos"]["style_shift"]["ap"]["mean"] == pytest.approx(0.5)
    assert out["held_out_generators"] == ["x", "y"]
    assert out["matrix"]["gan_upsampler"] == {"x": 0.5, "y": 0.7, "mean": 0.6}
    assert out["matrix"][main]["mean"] == pytest.approx(0.7)
    assert out["robustness"]["jpeg"]["50"]["ap"] == pytest.approx(0.6)
    assert out["bias_audit_drop"]["ap"] == pytest.approx(0.2)
    assert out["kfold"]["folds"] == 2 and out["kfold"]["ap"]["mean"] == pytest.approx(0.6)
    assert out["kfold"]["ap"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1), abs=1e-4)
    assert "fold" not in out["robustness"] and out["headline"]["ap"]["mean"] == pytest.approx(0.75)


def test_afr_sparsity_rows_keep_only_the_lambda_sweep(tmp_path):
    import json

    from hrr_core.pipeline.paths import StagePaths
    from hrr_core.pipeline.readback import afr_sparsity_rows

    ablations = {
        "no_sparsity": {"objective": {"lambda_omega": 0.0}},
        "omega_4": {"objective": {"lambda_omega": 4.0}},
        "no_msr": {"msr": {"enabled": False}},
    }
    for name, lam, kept in (
        ("hrr", 1.0, 40),
        ("ablation-no_sparsity", 0.0, 64),
        ("ablation-no_msr", 1.0, 30),
        ("ablation-omega_4", 4.0, 10),
    ):
        for kind, data in (
            ("train", {"afr": {"active_dims": kept, "dims": 64, "lambda_omega": lam}}),
            ("evaluate", {"mean": {"ap": 0.8}}),
        ):
            (tmp_path / "metrics" / kind).mkdir(parents=True, exist_ok=True)
            (tmp_path / "metrics" / kind / f"{name}.json").write_text(json.dumps(data))
    rows = afr_sparsity_rows(StagePaths(tmp_path), ablations).sort_values("lambda_omega")
    assert rows["row"].tolist() == ["ablation-no_sparsity", "hrr", "ablation-omega_4"]
    assert rows["active_fraction"].tolist() == [1.0, 40 / 64, 10 / 64]
