import json
import re

from hrr_core.report import reading, render_results


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _v2_eval(ap, train=("vae",), held=("gan",), in_family=("vae",)):
    mean = {
        "acc": 0.7, "real_acc": 0.9, "fake_acc": 0.5, "tpr_at_fpr": 0.4, "ap": ap, "auc": 0.8, "ece": 0.1,
        "acc_at05": 0.6,
    }  # fmt: skip
    ci = {k: [round(v - 0.05, 4), round(v + 0.05, 4)] for k, v in mean.items()}
    block = {"families": list(held), "n_photos": 10, "mean": mean, "ci": ci}
    return {
        "thresholds": {"calibrated": 0.4, "at_fpr": 0.7, "fpr_target": 0.05, "fixed": 0.5},
        "heldout": block,
        "in_family": {"families": list(in_family), "n_photos": 10, "mean": {**mean, "ap": 0.99}, "ci": ci},
        "style_shift": {
            "collections": ["palapeli-data"],
            "heldout": {**block, "n_photos": 4, "mean": {**mean, "ap": ap - 0.1}},
            "heldout_in_style": {**block, "n_photos": 6},
        },
        "mean": mean,
        "vae": {**mean, "ap": 0.99},
        "gan": mean,
        "held_out_generators": list(held),
        "in_family_generators": list(in_family),
        "profile": "default",
        "train_generators": list(train),
    }


def _write_run(root):
    _write(root / "metrics/evaluate/hrr.json", _v2_eval(0.81))
    _write(root / "metrics/evaluate/cnn.json", _v2_eval(0.71))
    _write(root / "metrics/evaluate/ablation-no_afr.json", {"mean": {"acc": 0.7, "ap": 0.6, "auc": 0.6}})
    _write(root / "metrics/train/hrr.json", {"afr": {"active_dims": 40, "dims": 64, "lambda_omega": 1.0}})
    _write(
        root / "metrics/compare.json",
        {
            "reference": "hrr",
            "n_boot": 1000,
            "differences": {
                "cnn": {
                    "families": ["gan"],
                    **{
                        k: {"diff": -0.1, "ci": [-0.2, -0.01], "resolved": True}
                        for k in ("ap", "auc", "acc", "tpr_at_fpr")
                    },
                }
            },
        },
    )
    h = {m: {"mean": 0.8, "std": 0.02} for m in ("acc", "real_acc", "fake_acc", "ap", "auc", "tpr_at_fpr")}
    _write(
        root / "metrics/study/hrr.json",
        {
            "profile": "default",
            "train_generators": ["vae"],
            "seeds": [0, 1, 2],
            "headline": h,
            "robustness_images": 240,
            "matrix": {"vae": {"vae": 0.99, "gan": 0.55, "mean": 0.55}},
            "robustness": {
                "clean": {"0": {"acc": 0.8, "ap": 0.9}},
                "jpeg": {"50": {"acc": 0.6, "ap": 0.7}},
                "harmonise": {"64": {"acc": 0.7, "ap": 0.85}},
            },
            "bias_audit_drop": {"acc": 0.1, "ap": 0.05},
            "processed_reals": {
                "n_reals": 168,
                "threshold": 0.4,
                "conditions": {
                    "clean": {"fpr": 0.1, "ci": [0.05, 0.15], "mean_score": 0.3},
                    "jpeg 50": {"fpr": 0.6, "ci": [0.5, 0.7], "mean_score": 0.6},
                },
            },
        },
    )


def test_render_results_from_metrics(tmp_path):
    _write_run(tmp_path)
    text = render_results(tmp_path)
    assert "| hrr | vae | gan | 0.810 [0.760, 0.860] |" in text  # held-out headline with its photo-level CI
    assert "| 0.600 | 0.990 |" in text  # ACC@0.5, then the in-family AP apart
    assert "| cnn | -0.100 [-0.200, -0.010] **resolved** |" in text  # paired difference against hrr
    assert "| hrr | 0.710 [0.760, 0.860] | 0.810 [0.760, 0.860] |" in text  # style shift vs in-style AP
    assert "| hrr | 0.100 [0.050, 0.150] | 0.600 [0.500, 0.700] |" in text  # processed reals FPR
    assert "| hrr | vae | 3 | 0.800 ± 0.020 |" in text  # seeds
    assert "| hrr | vae | 0.550 | 0.990 | 0.550 |" in text  # matrix row, test generators sorted
    assert "| hrr | 0.900 | 0.700 | 0.850 | 0.050 |" in text  # clean, JPEG 50, harmonised, drop
    assert "240 images" in text and "40/64 (λ=1)" in text and "| no_afr | 0.700 | 0.600 |" in text
    assert "†" not in text  # no substitute among hrr and cnn


def test_substitutes_are_marked_in_every_table_with_a_legend(tmp_path):
    _write_run(tmp_path)
    _write(tmp_path / "metrics/evaluate/univfd.json", _v2_eval(0.75))
    study = json.loads((tmp_path / "metrics/study/hrr.json").read_text())
    _write(tmp_path / "metrics/study/univfd.json", study)
    text = render_results(tmp_path)
    rows = [line for line in text.splitlines() if line.startswith("| univfd")]
    assert rows and all(line.startswith("| univfd † |") for line in rows), rows
    assert "† substitute" in text and "CLIP" in text and "docs/baselines.md" in text
    assert not any(line.startswith("| hrr †") for line in text.splitlines())


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"-?\d+\.\d{3}", text))


def test_every_number_of_the_reading_is_in_the_metrics(tmp_path):
    """The prose is generated; this checks the generator: each number in it is a metrics value."""
    _write_run(tmp_path)
    evals = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "metrics/evaluate").glob("*.json")}
    evals = {k: v for k, v in evals.items() if not k.startswith("ablation-")}
    compare = json.loads((tmp_path / "metrics/compare.json").read_text())
    studies = {"hrr": json.loads((tmp_path / "metrics/study/hrr.json").read_text())}
    prose = " ".join(reading(evals, compare, studies))
    values = set()

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, float):
            values.add(f"{x:.3f}")

    walk([evals, compare, studies])
    assert _numbers(prose) and _numbers(prose) <= values
    assert "hrr, cnn" in prose and "worse: cnn" in prose  # the ranking and the resolved difference


def test_render_results_without_runs(tmp_path):
    assert "No results yet" in render_results(tmp_path)
