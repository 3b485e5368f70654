"""The committed real-photo seed set (data/seed) and the tools that build and check it."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hrr_core.benchmark import photos
from hrr_core.benchmark.photos import (
    COLUMNS,
    MAX_SIDE,
    MAX_TOTAL_BYTES,
    SOURCES,
    convert_photo,
    load_seed_photo,
    load_seed_table,
    verify_seed_set,
)

SEED = Path(__file__).resolve().parents[2] / "data" / "seed"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return load_seed_table(SEED)


def test_committed_seed_set_verifies():
    assert verify_seed_set(SEED) == []


def test_provenance_columns_and_unique_ids(table):
    assert set(COLUMNS) <= set(table.columns)
    assert table["id"].is_unique
    assert list(table["id"]) == [s.id for s in SOURCES]
    assert (table["file"] == table["id"] + ".jpg").all()
    assert table["source_sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert table["version"].ne("").all() and table["licence"].ne("").all()


MULTI_PHOTO_GROUPS = {  # one scene, several photos: the stereo pair and the KPhotoAlbum sessions
    "skimage-motorcycle": {"skimage-motorcycle_left", "skimage-motorcycle_right"},
    "kpa-bar55": {"kpa-bar55", "kpa-bar55_2"},
    "kpa-grand_canyon": {"kpa-grand_canyon_2", "kpa-grand_canyon_3"},
    "kpa-skagen-2005-07-28": {"kpa-skagen", "kpa-anne_helene", "kpa-cold_water"},
}


def test_one_scene_shares_a_group_and_every_other_group_is_one_photo(table):
    members = table.groupby("group")["id"].agg(set)
    assert {g: ids for g, ids in members.items() if len(ids) > 1} == MULTI_PHOTO_GROUPS
    releases = table.groupby("group")["release"].nunique()
    assert (releases == 1).all()  # a group never spans two releases


def test_releases_first_set_unchanged_and_additions_release_2(table):
    assert table["release"].isin([1, 2]).all()
    first = table[table["release"] == 1]
    assert len(first) == 60 and first["id"].tolist() == [s.id for s in SOURCES if s.release == 1]
    assert (table["release"] == 2).sum() == 53
    colour = table[~table["is_grey"] & (table[["width", "height"]].min(axis=1) >= 256)]
    assert colour.groupby("release").size().to_dict() == {1: 51, 2: 53}


def test_photo_table_keeps_only_the_listed_releases(table):
    from hrr_core.benchmark.build import photo_table
    from hrr_core.schema.benchmark import BenchmarkConfig

    two = pd.concat([table.head(4).assign(release=1), table.tail(3).assign(release=2)], ignore_index=True)
    only_1 = photo_table(two, BenchmarkConfig(style_shift=(), photo_releases=(1,)))
    assert set(only_1["id"]) == set(table.head(4)["id"]) and (only_1["release"] == 1).all()
    both = photo_table(two, BenchmarkConfig(style_shift=(), photo_releases=(1, 2)))
    assert set(both["id"]) == set(two["id"])
    assert set(photo_table(two.drop(columns="release"), BenchmarkConfig(style_shift=()))["id"]) == set(two["id"])
    with pytest.raises(ValueError, match=r"photo_releases \[3\] selects no seed photo"):
        photo_table(two, BenchmarkConfig(style_shift=(), photo_releases=(3,)))


def test_default_photo_table_is_the_first_release(table):
    from hrr_core.benchmark.build import photo_table
    from hrr_core.schema.benchmark import BenchmarkConfig

    default = photo_table(table, BenchmarkConfig())
    assert len(default) == 51 and (default["release"] == 1).all()
    assert len(photo_table(table, BenchmarkConfig(photo_releases=(1, 2)))) == 104


@pytest.mark.parametrize("releases", [(), (0,), (1, -2), (True,)])
def test_photo_releases_must_be_positive_integers(releases):
    from hrr_core.confutil import ConfigError
    from hrr_core.schema.benchmark import BenchmarkConfig

    with pytest.raises(ConfigError, match="photo_releases"):
        BenchmarkConfig(photo_releases=releases)


def test_old_provenance_without_release_reads_as_release_1(tmp_path, table):
    old = pd.read_csv(SEED / "provenance.csv", dtype=str, keep_default_na=False).drop(columns="release")
    old.to_csv(tmp_path / "provenance.csv", index=False)
    assert (load_seed_table(tmp_path)["release"] == 1).all()


def test_no_darknet_and_expected_counts(table):
    assert not table["package"].str.contains("darknet").any()
    counts = table.groupby("package").size().to_dict()
    assert counts == {
        "scikit-image": 15,
        "scikit-learn": 2,
        "matplotlib": 1,
        "mate-backgrounds": 12,
        "plasma-workspace-wallpapers": 11,
        "lomiri-wallpapers-16.04": 13,
        "lomiri-wallpapers-20.04": 1,
        "palapeli-data": 5,
        "lxqt-themes": 11,
        "tuxpaint-data": 20,
        "python3-skimage": 1,
        "puzzle-jigsaw": 1,
        "kphotoalbum": 20,
    }
    assert not table["package"].str.contains("opencv").any()  # opencv-doc is reserved for outside evaluation


def test_each_photo_loads_as_rgb_uint8_within_size(table):
    for _, row in table.iterrows():
        arr = load_seed_photo(SEED, row)
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3, row["id"]
        assert arr.shape[:2] == (row["height"], row["width"]), row["id"]
        assert max(arr.shape[:2]) <= MAX_SIDE
        if row["is_grey"]:
            assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
    assert load_seed_photo(SEED, "skimage-camera").shape == (512, 512, 3)


def test_verify_reports_a_set_over_the_size_budget(monkeypatch, table):
    total = sum((SEED / f).stat().st_size for f in table["file"])
    assert total <= MAX_TOTAL_BYTES
    monkeypatch.setattr(photos, "MAX_TOTAL_BYTES", total - 1)
    assert [p for p in verify_seed_set(SEED) if "over" in p] == [
        f"seed set is {total / 2**20:.1f} MiB, over {(total - 1) / 2**20:.0f} MiB"
    ]


def test_source_list_is_the_shipped_csv_and_loads_again():
    assert photos.SOURCES_CSV.is_file() and photos.load_sources(photos.SOURCES_CSV) == SOURCES
    assert {s.kind for s in SOURCES} == {"pip", "deb"} and len({s.id for s in SOURCES}) == len(SOURCES) == 113


@pytest.mark.parametrize(
    "row, changes, message",
    [
        (0, {"kind": "conda"}, "line 2: kind 'conda'"),
        (1, {"id": "skimage-astronaut"}, "line 3: id 'skimage-astronaut' already on line 2"),
        (0, {"author": ""}, "line 2: empty or padded ['author']"),
        (1, {"licence": " CC0-1.0"}, "line 3: empty or padded ['licence']"),
        (0, {"id": "a/b"}, "line 2: id 'a/b' is not a file name stem"),
        (1, {"release": "0"}, "line 3: release '0' is not a positive integer"),
        (0, {"release": "x"}, "line 2: release 'x' is not a positive integer"),
    ],
)
def test_source_list_errors_name_the_file_and_line(tmp_path, row, changes, message):
    fields = [f.name for f in dataclasses.fields(photos.PhotoSource)]
    rows = [dataclasses.asdict(s) for s in SOURCES[:2]]
    rows[row].update(changes)
    path = tmp_path / "sources.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ValueError, match=re.escape(f"{path}, {message}")):
        photos.load_sources(path)


def test_source_list_with_wrong_columns_fails_naming_them(tmp_path):
    path = tmp_path / "sources.csv"
    path.write_text("id,group,kind\na,a,pip\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}: columns are ['id', 'group', 'kind']")):
        photos.load_sources(path)


def test_licences_file_exists_and_names_every_photo(table):
    text = (SEED / "LICENSES.md").read_text(encoding="utf-8")
    assert "Apache-2.0" in text and "darknet" in text
    for f in table["file"]:
        assert f"`{f}`" in text


def test_provenance_and_licences_md_agree_with_the_source_list(table):
    """Licence, package licence and author: SOURCES, provenance.csv and the per-photo table of
    LICENSES.md say the same for every photo."""
    by_id = {s.id: s for s in SOURCES}
    text = (SEED / "LICENSES.md").read_text(encoding="utf-8").splitlines()
    for row in table.itertuples(index=False):
        src = by_id[row.id]
        assert (row.licence, row.package_licence, row.author) == (src.licence, src.package_licence, src.author), row.id
        cells = [c.strip() for c in next(ln for ln in text if ln.startswith(f"| `{row.file}` |")).strip("|").split("|")]
        assert (cells[1], cells[2]) == (row.licence, row.author), row.id


def test_verify_reports_altered_missing_and_stray_files(tmp_path, table):
    shutil.copy(SEED / "provenance.csv", tmp_path)
    shutil.copy(SEED / "LICENSES.md", tmp_path)
    files = list(table["file"])
    for f in files[2:]:
        shutil.copy(SEED / f, tmp_path)
    (tmp_path / files[2]).write_bytes(b"not the photo")
    (tmp_path / "stray.png").write_bytes(b"x")
    problems = verify_seed_set(tmp_path)
    text = "\n".join(problems)
    assert f"missing file {files[0]}" in text and f"missing file {files[1]}" in text
    assert f"sha256 of {files[2]}" in text and "stray.png" in text
    assert len(problems) == 4
    assert photos.main(["verify", "--dir", str(tmp_path)]) == 1
    assert verify_seed_set(tmp_path / "nowhere") != []


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_convert_photo_downscales_deterministically_and_detects_grey():
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (750, 2000, 3), dtype=np.uint8)
    a, facts = convert_photo(_png_bytes(colour))
    b, _ = convert_photo(_png_bytes(colour))
    assert a == b
    assert facts == {"is_grey": False, "orig_width": 2000, "orig_height": 750, "width": 1024, "height": 384}
    grey = np.repeat(rng.integers(0, 256, (300, 400, 1), dtype=np.uint8), 3, axis=2)
    g, gfacts = convert_photo(_png_bytes(grey))
    assert gfacts["is_grey"] and (gfacts["width"], gfacts["height"]) == (400, 300)
    assert Image.open(io.BytesIO(g)).mode == "L"


def test_changed_source_is_reported(table):
    new = table.copy()
    new.loc[0, "source_sha256"] = "f" * 64
    new.loc[0, "version"] = "9.9.9"
    changes = photos._changes(table, new)
    assert len(changes) == 1
    assert new.loc[0, "id"] in changes[0] and "0.26.0 -> 9.9.9" in changes[0] and "ffffffffffff" in changes[0]


@pytest.mark.slow
def test_rebuild_reproduces_the_committed_set(tmp_path):
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        pytest.skip("needs apt-get and dpkg-deb (Debian/Ubuntu) and access to PyPI and Debian")
    df = photos.rebuild_seed_set(tmp_path / "seed", tmp_path / "work", log=lambda _: None)
    committed = load_seed_table(SEED)
    assert list(df["sha256"]) == list(committed["sha256"])
    assert df.attrs["changes"] == []
