import numpy as np
import pytest

from hrr_core.evaluation.metrics import binary_metrics, bootstrap_ci, oracle_accuracy, roc_points


def test_hand_computed_case():
    scores = np.array([0.1, 0.6, 0.4, 0.9])  # reals: 0.1, 0.6 ; fakes: 0.4, 0.9
    labels = np.array([0, 0, 1, 1])
    m = binary_metrics(scores, labels)
    assert m["acc"] == 0.5 and m["real_acc"] == 0.5 and m["fake_acc"] == 0.5
    assert m["auc"] == pytest.approx(0.75)
    # ranking 0.9(f) 0.6(r) 0.4(f) 0.1(r): precision at the fakes 1/1 and 2/3
    assert m["ap"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["oracle_acc"] == 0.75


def test_oracle_handles_ties_and_extremes():
    assert oracle_accuracy(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    assert oracle_accuracy(np.array([0.2, 0.8]), np.array([1, 0])) == 0.5
    assert oracle_accuracy(np.array([0.2, 0.8]), np.array([0, 1])) == 1.0


def test_single_class_gives_nan_ap():
    m = binary_metrics(np.array([0.2, 0.7]), np.array([1, 1]))
    assert np.isnan(m["ap"]) and np.isnan(m["real_acc"]) and m["fake_acc"] == 0.5


def test_bad_inputs():
    with pytest.raises(ValueError, match="length"):
        binary_metrics(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="0 \\(real\\) or 1"):
        binary_metrics(np.zeros(2), np.array([0, 2]))
    with pytest.raises(ValueError, match="NaN"):
        binary_metrics(np.array([np.nan, 0.1]), np.array([0, 1]))


def test_bootstrap_interval_brackets_point_estimate():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(200), np.ones(200)].astype(int)
    scores = np.clip(labels * 0.3 + rng.normal(0.35, 0.2, 400), 0, 1)
    point = binary_metrics(scores, labels)
    ci = bootstrap_ci(scores, labels, n_boot=100, seed=1)
    for name in ("acc", "ap", "auc"):
        lo, hi = ci[name]
        assert lo <= point[name] <= hi and hi - lo < 0.2
    assert ci == bootstrap_ci(scores, labels, n_boot=100, seed=1)


def test_roc_points_thinned_and_monotone():
    rng = np.random.default_rng(0)
    pts = roc_points(rng.random(1000), rng.integers(0, 2, 1000), max_points=50)
    assert len(pts) <= 50
    fpr = [p["fpr"] for p in pts]
    assert fpr == sorted(fpr) and fpr[0] == 0 and fpr[-1] == 1


def test_pr_points_perfect_and_thinned():
    from hrr_core.evaluation.metrics import pr_points

    pts = pr_points(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    assert {"recall": 1.0, "precision": 1.0} in pts  # a perfect ranking reaches full recall at precision 1
    rng = np.random.default_rng(0)
    assert len(pr_points(rng.random(1000), rng.integers(0, 2, 1000), max_points=50)) <= 50
