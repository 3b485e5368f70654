import numpy as np
import pandas as pd
import pytest

from hrr_core.data.manifest import ManifestError, check_no_leakage, mask_boxes, read_manifest, write_manifest


def rows(n=4):
    return pd.DataFrame(
        {
            "id": [f"i{k}" for k in range(n)],
            "path": [f"x/{k}.png" for k in range(n)],
            "label": [0, 1] * (n // 2),
            "generator": ["real", "vae"] * (n // 2),
            "source": ["a", "a", "b", "b"][:n],
            "split": ["train", "train", "test", "test"][:n],
            "width": 64,
            "height": 64,
            "format": "png",
            "sha256": "ab",
            "size": 64,
        }
    )


def test_round_trip_is_sorted_and_keeps_extra_columns(tmp_path):
    df = rows().iloc[::-1]
    write_manifest(df, tmp_path / "m.csv")
    back = read_manifest(tmp_path / "m.csv")
    assert back["id"].tolist() == ["i0", "i1", "i2", "i3"] and "size" in back and back.attrs["root"] == str(tmp_path)
    first = (tmp_path / "m.csv").read_bytes()
    write_manifest(df.sample(frac=1, random_state=1), tmp_path / "m.csv")
    assert (tmp_path / "m.csv").read_bytes() == first


@pytest.mark.parametrize(
    "col, value, words", [("label", 2, "label"), ("split", "dev", "split"), ("id", "i0", "unique")]
)
def test_schema_errors(tmp_path, col, value, words):
    df = rows()
    df.loc[1, col] = value
    with pytest.raises(ManifestError, match=words):
        write_manifest(df, tmp_path / "m.csv")


def test_missing_column_and_file(tmp_path):
    with pytest.raises(ManifestError, match="missing columns"):
        write_manifest(rows().drop(columns="source"), tmp_path / "m.csv")
    with pytest.raises(FileNotFoundError, match="dvc repro prepare"):
        read_manifest(tmp_path / "none.csv")


def test_leakage_detected():
    df = rows()
    check_no_leakage(df)
    df.loc[3, "source"] = "a"
    with pytest.raises(ManifestError, match="source 'a'"):
        check_no_leakage(df)


def test_mask_boxes_round_trip_and_errors(tmp_path):
    assert (mask_boxes(rows()) == -1).all()  # no mask columns: no masks
    df = rows().assign(generator=["real", "sd_inpaint"] * 2, mask_top=[np.nan, 8] * 2, mask_left=[np.nan, 4] * 2)
    df = df.assign(mask_h=[np.nan, 16] * 2, mask_w=[np.nan, 60] * 2)
    write_manifest(df, tmp_path / "m.csv")
    back = read_manifest(tmp_path / "m.csv")  # empty cells come back as "", the rest as "8.0" etc.
    assert mask_boxes(back).tolist() == [[-1, -1, -1, -1], [8, 4, 16, 60]] * 2
    with pytest.raises(ManifestError, match="outside its 64x64"):
        mask_boxes(df.assign(mask_w=[np.nan, 61] * 2))
    with pytest.raises(ManifestError, match="incomplete or non-integer"):
        mask_boxes(df.assign(mask_h=[np.nan, np.nan, np.nan, 16]))
    with pytest.raises(ManifestError, match="missing"):
        mask_boxes(df.drop(columns="mask_w"))
