"""Protocol v2: validation operating points, calibration error, photo-level and paired
bootstrap, held-out families and the per-set rows (hrr_core.evaluation.stats/tables/heldout)."""

import numpy as np
import pandas as pd
import pytest

from hrr_core.benchmark.splits import assign_splits, collection_of
from hrr_core.evaluation.heldout import split_families
from hrr_core.evaluation.metrics import binary_metrics, bootstrap_ci
from hrr_core.evaluation.stats import (
    cluster_bootstrap,
    expected_calibration_error,
    ranking_metrics,
    threshold_at_fpr,
    v2_metrics,
)
from hrr_core.evaluation.tables import OperatingPoints, headline, paired_difference, results_rows


def test_threshold_at_fpr_lets_the_target_share_of_reals_through():
    reals = np.linspace(0.0, 0.99, 100)
    t = threshold_at_fpr(reals, 0.05)
    assert (reals >= t).mean() == pytest.approx(0.05)
    assert (reals >= threshold_at_fpr(reals, 0.0)).sum() == 0
    assert threshold_at_fpr(np.full(10, 0.3), 0.05) > 0.3  # ties: none of them may pass


def test_ece_is_zero_when_calibrated_and_the_gap_otherwise():
    assert expected_calibration_error([0.0, 0.0, 1.0, 1.0], [0, 0, 1, 1]) == 0.0
    assert expected_calibration_error([0.95, 0.95, 0.95, 0.95], [0, 0, 1, 1]) == pytest.approx(0.45)


def test_ranking_metrics_match_scikit_learn_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(50):
        y = rng.integers(0, 2, 40)
        s = np.round(rng.random(40), 1)
        if y.min() == y.max():
            continue
        ref, fast = binary_metrics(s, y), ranking_metrics(s, y)
        assert fast["ap"] == pytest.approx(ref["ap"]) and fast["auc"] == pytest.approx(ref["auc"])
        assert fast["oracle_acc"] == pytest.approx(ref["oracle_acc"])


def test_v2_metrics_use_each_operating_point():
    s, y = np.array([0.1, 0.3, 0.6, 0.7]), np.array([0, 1, 0, 1])
    m = v2_metrics(s, y, t_cal=0.25, t_fpr=0.65, fixed=0.5)
    assert m["acc"] == 0.75 and m["real_acc"] == 0.5 and m["fake_acc"] == 1.0
    assert m["tpr_at_fpr"] == 0.5 and m["fpr_at_fpr"] == 0.0
    assert m["acc_at05"] == 0.5


def _photos(n_photos=8, per=25, seed=0, shift=0.0):
    """Crops of one photo share its score level: strongly dependent within a photo."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_photos):
        level = rng.random()
        for label in (0, 1):
            for k in range(per):
                score = np.clip(level * 0.6 + 0.3 * label + shift * label + 0.01 * rng.standard_normal(), 0, 1)
                rows.append({"id": f"p{p}-{label}-{k}", "source": f"p{p}", "label": label, "score": float(score)})
    return pd.DataFrame(rows)


def test_photo_level_intervals_are_wider_than_image_level_ones():
    df = _photos()
    s, y = df["score"].to_numpy(), df["label"].to_numpy()
    img = bootstrap_ci(s, y, 0.5, 300, 0)["ap"]
    photo = cluster_bootstrap(
        lambda pick: {"ap": ranking_metrics(s[pick(np.ones(len(s), bool))], y[pick(np.ones(len(s), bool))])["ap"]},
        df["source"],
        300,
        0,
    )["ap"]  # noqa: E501
    assert photo[1] - photo[0] > 2 * (img[1] - img[0])


def _scored(seed=0, shift=0.0, collections=("a", "b")):
    """Two families over the same photos (reals shared), with a collection per photo."""
    base = _photos(6, 6, seed, shift)
    reals = base[base["label"] == 0].assign(generator="real")
    fakes = [
        base[base["label"] == 1].assign(generator=g, id=lambda d, g=g: d["id"] + g) for g in ("ldm_img2img", "vae")
    ]
    df = pd.concat([reals, *fakes], ignore_index=True).assign(split="test", width=64)
    return df.assign(collection=[collections[int(s[1:]) % 2] for s in df["source"]])


def test_paired_difference_is_zero_against_itself_and_resolved_for_a_clear_gap():
    ops = OperatingPoints(0.5, 0.7, 0.05)
    a = _scored()
    same = paired_difference(a, a, ["vae"], ops, ops, n_boot=200)
    assert same["ap"]["diff"] == 0 and not same["ap"]["resolved"]
    noise = a.assign(score=np.random.default_rng(1).random(len(a)))
    worse = paired_difference(noise, a, ["vae"], ops, ops, n_boot=200)
    assert worse["ap"]["diff"] < 0 and worse["ap"]["resolved"] and worse["ap"]["ci"][1] < 0
    with pytest.raises(ValueError, match="same test images"):
        paired_difference(a.iloc[:-1], a, ["vae"], ops, ops, n_boot=10)


def test_held_out_families_exclude_the_shared_model():
    held, inside = split_families(["ldm_img2img"], ["vae", "ldm_img2img", "pixel_ddpm", "ldm_sample"])
    assert held == ["vae", "pixel_ddpm"] and inside == ["ldm_img2img", "ldm_sample"]
    assert split_families(["gan_upsampler"], ["vae", "ldm_sample"]) == (["vae", "ldm_sample"], [])


def test_rows_and_headline_report_held_out_in_family_and_style_shift_apart():
    ops = OperatingPoints(0.5, 0.7, 0.05)
    df = _scored()
    rows = results_rows(df, "m", ["ldm_img2img"], ["ldm_img2img", "vae"], ops, n_boot=20, style=["a"])
    assert set(rows["photos"]) == {"all", "style_shift", "in_style"}
    assert rows.set_index(["test", "photos", "size"]).loc[("vae", "all", "all"), "held_out"]
    assert not rows.set_index(["test", "photos", "size"]).loc[("ldm_img2img", "all", "all"), "held_out"]
    assert {"ap_lo", "ap_hi", "tpr_at_fpr", "ece", "acc_at05", "n_photos"} <= set(rows.columns)
    out = headline(df, ["ldm_img2img"], ["ldm_img2img", "vae"], ops, n_boot=20, style=["a"])
    assert out["heldout"]["families"] == ["vae"] and out["in_family"]["families"] == ["ldm_img2img"]
    vae = rows[(rows["test"] == "vae") & (rows["photos"] == "all") & (rows["size"] == "all")].iloc[0]
    assert out["heldout"]["mean"]["ap"] == pytest.approx(vae["ap"], abs=1e-4)
    assert out["style_shift"]["heldout"]["n_photos"] == 3 and out["style_shift"]["heldout_in_style"]["n_photos"] == 3
    lo, hi = out["heldout"]["ci"]["ap"]
    assert lo <= out["heldout"]["mean"]["ap"] <= hi


def test_operating_points_refuse_test_rows():
    val = pd.DataFrame({"score": [0.2, 0.8], "label": [0, 1], "split": ["val", "test"]})
    with pytest.raises(ValueError, match="validation"):
        OperatingPoints.from_validation(val, 0.05)
    ops = OperatingPoints.from_validation(val.assign(split="val"), 0.05)
    assert 0.2 < ops.calibrated <= 0.8


def test_style_shift_collections_go_to_test_whole():
    groups = [f"g{i}" for i in range(20)]
    out = assign_splits(groups, (0.6, 0.2, 0.2), 0, test_only=["g3", "g7"])
    assert out["g3"] == out["g7"] == "test"
    rest = {g: s for g, s in out.items() if g not in ("g3", "g7")}
    assert list(rest.values()).count("train") == 10  # the fractions split the 18 others: 10 / 4 / 4
    assert assign_splits(groups, (0.6, 0.2, 0.2), 0) == assign_splits(groups, (0.6, 0.2, 0.2), 0, test_only=[])
    assert collection_of("lomiri-wallpapers-16.04") == collection_of("lomiri-wallpapers-20.04") == "lomiri-wallpapers"
    assert collection_of("palapeli-data") == "palapeli-data"
