import pandas as pd
import pytest

from hrr_core.benchmark.audit import BiasError, assert_unbiased, bias_audit, counts_table


def bench(fake_format="png", fake_sizes=(64, 96), fake_quality=0):
    rows = []
    for i, s in enumerate((64, 96)):
        rows.append(
            {
                "id": f"r{i}",
                "label": 0,
                "generator": "real",
                "split": "test",
                "width": s,
                "height": s,
                "format": "png",
                "quality": 0,
                "source": "a",
            }
        )
    for i, s in enumerate(fake_sizes):
        rows.append(
            {
                "id": f"f{i}",
                "label": 1,
                "generator": "vae",
                "split": "test",
                "width": s,
                "height": s,
                "format": fake_format,
                "quality": fake_quality,
                "source": "a",
            }
        )
    return pd.DataFrame(rows)


def test_matched_classes_pass():
    audit = bias_audit(bench())
    assert audit["ok"] and audit["per_generator"]["vae"]["size"]["tvd"] == 0
    assert_unbiased(audit)


@pytest.mark.parametrize(
    "kwargs, col",
    [({"fake_format": "jpeg"}, "format"), ({"fake_sizes": (64, 64)}, "size"), ({"fake_quality": 90}, "quality")],
)
def test_shortcuts_fail_loudly(kwargs, col):
    audit = bias_audit(bench(**kwargs))
    assert not audit["ok"] and col in audit["problems"][0]
    with pytest.raises(BiasError, match=col):
        assert_unbiased(audit)


def test_counts_table():
    t = counts_table(bench())
    assert t.loc[("vae", "64px"), "test"] == 1 and t.loc[("real", "96px"), "train"] == 0
