"""The embedded benchmark build on a tiny configuration: splits by photo, content-matched fakes,
one codec path, and identical results from two builds (everything seeded)."""

import hashlib

import numpy as np
import pandas as pd
import pytest
import torch

from hrr_core.benchmark.audit import bias_audit
from hrr_core.benchmark.build import BenchmarkConfig, build_benchmark, export_folder_view
from hrr_core.data.manifest import check_no_leakage, read_manifest


class ShiftGenerator:
    """A stand-in family: brightens the image (the real zoo is tested in test_generators)."""

    def __init__(self, name):
        self.name = name

    def fit(self, images, device, generator):
        return {"steps": 0}

    def generate(self, images, device, generator):
        return (images + 0.1 * torch.rand(images.shape, generator=generator)).clamp(0, 1)

    def save(self, directory):
        directory.mkdir(parents=True, exist_ok=True)


@pytest.fixture()
def photos():
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {"id": [f"p{i}" for i in range(7)], "group": ["g0", "g0", "g1", "g2", "g3", "g4", "g5"], "is_grey": False}
    )
    arrays = {pid: (rng.random((300, 360, 3)) * 255).astype(np.uint8) for pid in table["id"]}
    return table, (lambda row: arrays[row["id"]])


def build(photos, out, monkeypatch, codec="png"):
    monkeypatch.setattr(
        "hrr_core.benchmark.generators.build_generator", lambda name, cfg, shared=None: ShiftGenerator(name)
    )
    cfg = BenchmarkConfig(
        crop_sizes=(32, 48),
        crops_per_size=2,
        short_side_range=(64, 128),
        families=("a", "b"),
        gen_train_crops=8,
        gen_train_size=32,
        codec=codec,
    )
    table, load = photos
    return build_benchmark(table, load, cfg, None, out, torch.device("cpu"), seed=0, log=lambda *a: None)


def test_build_is_split_by_photo_matched_and_unbiased(photos, tmp_path, monkeypatch):
    m = build(photos, tmp_path / "b", monkeypatch)
    check_no_leakage(m)
    assert set(m["split"]) == {"train", "val", "test"}
    assert m.loc[m["source"] == "g0", "split"].nunique() == 1  # two photos of one group stay together
    reals = m[m["label"] == 0]
    for fam in ("a", "b"):
        fakes = m[(m["label"] == 1) & (m["generator"] == fam)]
        assert sorted(f.rsplit("-", 1)[0] for f in fakes["id"]) == sorted(reals["id"])  # one fake per real crop
    assert bias_audit(m)["ok"]
    back = read_manifest(tmp_path / "b" / "manifest.csv")
    row = back.iloc[0]
    assert hashlib.sha256((tmp_path / "b" / row["path"]).read_bytes()).hexdigest() == row["sha256"]


def test_two_builds_are_identical(photos, tmp_path, monkeypatch):
    build(photos, tmp_path / "one", monkeypatch)
    build(photos, tmp_path / "two", monkeypatch)
    assert (tmp_path / "one" / "manifest.csv").read_bytes() == (tmp_path / "two" / "manifest.csv").read_bytes()


def test_jpeg_codec_applies_to_both_classes(photos, tmp_path, monkeypatch):
    m = build(photos, tmp_path / "j", monkeypatch, codec="jpeg")
    assert set(m["format"]) == {"jpeg"} and set(m["quality"]) == {95}


def test_folder_view(photos, tmp_path, monkeypatch):
    m = build(photos, tmp_path / "b", monkeypatch)
    m.attrs["root"] = str(tmp_path / "b")
    view = export_folder_view(m, tmp_path / "view")
    n_real = int(((m["split"] == "test") & (m["label"] == 0)).sum())
    for fam in ("a", "b"):
        assert len(list((view / fam / "0_real").iterdir())) == n_real
        assert len(list((view / fam / "1_fake").iterdir())) == n_real
