import io
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from hrr_core.benchmark.external import build_stage_manifest
from hrr_core.confutil import ConfigError, from_dict
from hrr_core.data.adapters import build_manifest, read_benchmark_manifest
from hrr_core.data.harmonise import HarmoniseConfig, harmonise_image, harmonise_manifest
from hrr_core.data.manifest import absolute_paths, validate_manifest
from hrr_core.schema.benchmark import RealBenchmarkConfig


def hcfg(**kw):
    return from_dict(HarmoniseConfig, kw, "harmonise")


@pytest.fixture
def dire(tmp_path, fx):
    """DiffusionForensics-like tree: JPEG 24 px reals, PNG 16 px fakes (the shortcut)."""
    fx.make_diffusionforensics(tmp_path / "bench", n=2, trees=("images",))
    return build_manifest(
        from_dict(RealBenchmarkConfig, {"source": "diffusionforensics", "root": str(tmp_path / "bench")})
    )


@pytest.mark.parametrize("fmt,resize", [("jpeg", "resize_short"), ("png", "center_crop")])
def test_reals_and_fakes_come_out_alike(dire, tmp_path, fmt, resize):
    assert dire.groupby("label")["format"].agg(set).to_dict() == {0: {"jpeg"}, 1: {"png"}}
    out = harmonise_manifest(dire, dire.attrs["root"], tmp_path / "h", hcfg(format=fmt, resize=resize, size=20))
    validate_manifest(out)
    assert len(out) == len(dire) and set(out["format"]) == {fmt}
    assert set(zip(out.width, out.height)) == {(20, 20)}
    assert set(out.orig_format) == {"jpeg", "png"} and list(out.id) == list(dire.id)
    for row in out.sample(4, random_state=0).itertuples():
        with Image.open(tmp_path / "h" / row.path) as im:
            assert im.format.lower() == fmt and im.size == (20, 20)


def test_center_crop_keeps_pixels_when_large_enough():
    im = Image.new("RGB", (40, 30), (10, 20, 30))
    im.putpixel((20, 15), (255, 0, 0))
    data = harmonise_image(im, hcfg(format="png", resize="center_crop", size=10))
    with Image.open(io.BytesIO(data)) as out:
        assert out.size == (10, 10) and out.convert("RGB").getpixel((5, 5)) == (255, 0, 0)


def test_metadata_stripped_or_kept(tmp_path, fx):
    src = fx.write_image(tmp_path / "a.jpg", exif=True)
    with Image.open(src) as im:
        im.load()
        stripped = harmonise_image(im, hcfg(strip_metadata=True), "jpeg")
        kept = harmonise_image(im, hcfg(strip_metadata=False), "jpeg")
    assert (
        not Image.open(io.BytesIO(stripped)).getexif()
        and Image.open(io.BytesIO(kept)).getexif()[0x010F] == "FixtureCam"
    )


def test_bad_files_are_skipped_and_reported_and_names_never_collide(tmp_path, fx):
    fx.write_image(tmp_path / "in" / "a.png")
    fx.write_image(tmp_path / "in" / "a.jpg")
    fx.write_corrupt(tmp_path / "in" / "c.png")
    rows = [
        dict(id=p, path=p, label=i % 2, generator="g", source=p, split="test", width=16, height=16, format=f, sha256="")
        for i, (p, f) in enumerate([("a.png", "png"), ("a.jpg", "jpeg"), ("c.png", "png")])
    ]
    out = harmonise_manifest(pd.DataFrame(rows), tmp_path / "in", tmp_path / "out", hcfg(format="jpeg"))
    assert sorted(out.path) == ["a.jpg", "a.png.jpg"]
    assert out.attrs["bad_files"][0][0] == "c.png"
    assert (tmp_path / "out" / "bad_files.csv").read_text().startswith("path,reason\nc.png,")


def test_identity_config_copies_bytes(tmp_path, fx):
    src = fx.write_image(tmp_path / "in" / "x.webp")
    df = pd.DataFrame(
        [
            dict(
                id="x",
                path="x.webp",
                label=1,
                generator="g",
                source="x",
                split="test",
                width=16,
                height=16,
                format="webp",
                sha256="",
            )
        ]
    )
    out = harmonise_manifest(df, tmp_path / "in", tmp_path / "out", hcfg(format="keep", strip_metadata=False))
    assert (tmp_path / "out" / "x.webp").read_bytes() == src.read_bytes() and out.format[0] == "webp"


def test_config_checks():
    with pytest.raises(ConfigError, match="harmonise.jpeg_quality"):
        hcfg(jpeg_quality=0)
    with pytest.raises(ConfigError, match="harmonise.resize"):
        hcfg(resize="crop")


def test_prepare_stage_writes_raw_and_harmonised_manifests(tmp_path, fx):
    fx.make_genimage(tmp_path / "bench", n=8)
    c = from_dict(
        RealBenchmarkConfig,
        {
            "source": "genimage",
            "root": str(tmp_path / "bench"),
            "harmonise": {"format": "jpeg", "resize": "resize_short", "size": 16},
        },
        "real_benchmark",
    )
    h, _ = build_stage_manifest(c, tmp_path / "out", echo=lambda *_: None)
    raw = read_benchmark_manifest(tmp_path / "out" / "source" / "manifest.csv")
    assert raw.attrs["root"] == str(tmp_path / "bench") and raw.groupby("label")["format"].nunique().max() == 1
    assert set(raw.loc[raw.label == 1, "width"]) == {16, 32}  # the size shortcut, before
    assert h.attrs["root"] == str(tmp_path / "out") and h.path.str.startswith("harmonised/").all()
    assert len(h) == len(raw) and h.groupby("label")[["format", "width", "height"]].agg(set).map(len).eq(1).all().all()
    assert absolute_paths(h).map(lambda p: Path(p).is_file()).all()
