import numpy as np
import pandas as pd
import pytest

from hrr_core.evaluation.protocol import generator_set, results_table, summary, training_set


def manifest():
    rows = []
    for split in ("train", "test"):
        for k in range(6):
            size = 64 if k % 2 else 96
            rows.append(
                {"id": f"{split}-r{k}", "label": 0, "generator": "real", "split": split, "width": size, "height": size}
            )
            for g in ("vae", "gan"):
                rows.append(
                    {
                        "id": f"{split}-r{k}-{g}",
                        "label": 1,
                        "generator": g,
                        "split": split,
                        "width": size,
                        "height": size,
                    }
                )
    return pd.DataFrame(rows)


def test_sets_pair_fakes_with_shared_reals():
    m = manifest()
    t = generator_set(m, "vae")
    assert len(t) == 12 and set(t["generator"]) == {"real", "vae"}
    tr = training_set(m, ["vae", "gan"])
    assert len(tr) == 18 and tr["id"].is_unique
    with pytest.raises(ValueError, match="both are needed"):
        generator_set(m, "nope")


def test_shared_reals_come_from_the_fakes_subsets():
    # DiffusionForensics: one shared real folder per dataset; celebahq's fakes meet celebahq's reals only
    m = pd.DataFrame(
        {
            "id": list("abcde"),
            "label": [0, 0, 1, 1, 1],
            "generator": ["real", "real", "adm", "sdv2", "adm"],
            "split": "test",
            "subset": ["lsun_bedroom", "celebahq", "lsun_bedroom", "celebahq", "imagenet"],
        }
    )
    assert sorted(generator_set(m, "sdv2")["id"]) == ["b", "d"]
    assert sorted(generator_set(m, "adm")["id"]) == ["a", "c", "e"]
    assert sorted(generator_set(m.drop(columns="subset"), "sdv2")["id"]) == [
        "a",
        "b",
        "d",
    ]  # no subsets: every shared real


def test_results_table_and_summary():
    m = manifest()
    scores = pd.DataFrame({"id": m["id"], "score": np.where(m["label"] == 1, 0.9, 0.1)})
    scores.loc[scores["id"].str.endswith("gan"), "score"] = 0.2  # gan fakes missed
    table = results_table(scores, m, "cnn", ["vae"], ["vae", "gan"], n_boot=20)
    overall = table[table["size"] == "all"].set_index("test")
    assert (
        overall.loc["vae", "acc"] == 1.0
        and overall.loc["gan", "fake_acc"] == 0.0
        and overall.loc["gan", "real_acc"] == 1.0
    )
    assert set(table["size"]) == {"all", "64", "96"} and "ap_lo" in table
    s = summary(table)
    assert s["cnn"]["mean"]["acc"] == pytest.approx(0.75) and s["cnn"]["gan"]["acc"] == 0.5
