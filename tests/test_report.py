import json

from hrr_core.report import render_results


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_render_results_from_metrics(tmp_path):
    mean = {"acc": 0.7, "real_acc": 0.9, "fake_acc": 0.5, "ap": 0.81, "auc": 0.8, "oracle_acc": 0.75}
    _write(
        tmp_path / "metrics/evaluate/hrr.json",
        {"mean": mean, "vae": mean, "profile": "default", "train_generators": ["vae"]},
    )
    _write(tmp_path / "metrics/evaluate/ablation-no_afr.json", {"mean": {**mean, "ap": 0.6}})
    _write(tmp_path / "metrics/train/hrr.json", {"afr": {"active_dims": 40, "dims": 64, "lambda_omega": 1.0}})
    h = {m: {"mean": 0.8, "std": 0.02} for m in ("acc", "real_acc", "fake_acc", "ap", "auc")}
    _write(
        tmp_path / "metrics/study/hrr.json",
        {
            "profile": "default",
            "train_generators": ["vae"],
            "seeds": [0, 1, 2],
            "headline": h,
            "robustness_images": 240,
            "matrix": {"vae": {"vae": 0.99, "gan": 0.55, "mean": 0.77}},
            "robustness": {
                "clean": {"0": {"acc": 0.8, "ap": 0.9}},
                "jpeg": {"50": {"acc": 0.6, "ap": 0.7}},
                "harmonise": {"64": {"acc": 0.7, "ap": 0.85}},
            },
            "bias_audit_drop": {"acc": 0.1, "ap": 0.05},
        },
    )
    text = render_results(tmp_path)
    assert "| hrr | vae | 3 | 0.800 ± 0.020 |" in text  # headline over seeds
    assert "| hrr | vae | 0.550 | 0.990 | 0.770 |" in text  # matrix row, test generators sorted
    assert "| hrr | 0.900 | 0.700 | 0.850 | 0.050 |" in text  # clean, JPEG 50, harmonised, drop
    assert "240 images" in text and "40/64 (λ=1)" in text and "| no_afr | 0.700 | 0.600 |" in text


def test_render_results_without_runs(tmp_path):
    assert "No results yet" in render_results(tmp_path)
