"""The file-level bias audit on real files written to tmp_path: biased fixtures (JPEG reals
against PNG fakes; different sizes per class; blurred fakes) fail naming the feature, an
unbiased one (both classes from one distribution, one codec) passes."""

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from hrr_core.benchmark.file_audit import (
    FileAuditError,
    assert_no_file_shortcut,
    blockiness,
    decode,
    enforce,
    file_audit,
    file_audit_markdown,
    file_features,
    pair_measures,
    pixel_features,
    shortcut_detector,
)


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A photo-like (size, size, 3) uint8 image: a smooth random colour field plus grain of
    random strength."""
    lo = rng.uniform(20, 235, (4, 4, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(lo).resize((size, size), Image.BILINEAR), np.float64)
    grain = rng.normal(0, rng.uniform(2, 12), (size, size, 1)) + rng.normal(0, 2, (size, size, 3))
    return np.clip(base + grain, 0, 255).round().astype(np.uint8)


def save(root, rel: str, img: np.ndarray, fmt: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"quality": 90} if fmt == "jpeg" else {}
    Image.fromarray(img).save(root / rel, format=fmt.upper(), **kwargs)


def benchmark(root, *, real_fmt="png", fake_fmt="png", real_size=48, fake_size=48, blur=0.0, n=(90, 60), seed=0):
    """n[0] train and n[1] test photos; one real crop and one fake ('gen', drawn independently
    from the same texture process unless ``blur``) per photo."""
    rng = np.random.default_rng(seed)
    rows = []
    for split, count in zip(("train", "test"), n):
        for i in range(count):
            rid = f"{split}{i:03d}"
            real = texture(rng, real_size)
            fake = texture(rng, fake_size)
            if blur:
                fake = np.asarray(Image.fromarray(fake).filter(ImageFilter.GaussianBlur(blur)))
            pair = ((0, "real", real, real_fmt, rid), (1, "gen", fake, fake_fmt, f"{rid}-gen"))
            for label, gen, img, fmt, name in pair:
                ext = "jpg" if fmt == "jpeg" else "png"
                rel = f"images/{split}/{gen}/{name}.{ext}"
                save(root, rel, img, fmt)
                rows.append(
                    {
                        "id": name,
                        "path": rel,
                        "label": label,
                        "generator": gen,
                        "source": rid,
                        "photo": rid,
                        "split": split,
                        "width": img.shape[1],
                        "height": img.shape[0],
                        "format": fmt,
                    }
                )
    df = pd.DataFrame(rows)
    df.attrs["root"] = str(root)
    return df


# ---------------------------------------------------------------- per-file measurements


def test_blockiness_sees_the_jpeg_grid_and_not_smooth_content():
    rng = np.random.default_rng(0)
    img = texture(rng, 64)
    g = img.astype(np.float64) @ [0.299, 0.587, 0.114]
    assert 0.8 < blockiness(g) < 1.2  # no grid in the PNG pixels
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=20)
    _, jpg = decode(buf.getvalue())
    assert blockiness(jpg.astype(np.float64) @ [0.299, 0.587, 0.114]) > 1.3
    assert blockiness(np.full((32, 32), 7.0)) == 1.0 and blockiness(np.zeros((8, 8))) == 1.0
    steps = np.repeat(np.arange(4) * 40.0, 8)[None, :].repeat(32, 0)  # (32, 32): steps only at x = 8k
    assert blockiness(steps) > 100


def test_decode_reports_codec_mode_and_bytes_per_pixel():
    img = texture(np.random.default_rng(1), 32)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=75)
    info, rgb = decode(buf.getvalue())
    assert info["format"] == "jpeg" and info["mode"] == "RGB" and info["jpeg_quality"] == 75
    assert info["dimensions"] == "32x32" and info["bytes_per_pixel"] == pytest.approx(len(buf.getvalue()) / 1024)
    buf = io.BytesIO()
    Image.fromarray(img[..., 0]).save(buf, format="PNG")
    info, rgb = decode(buf.getvalue())
    assert info["format"] == "png" and info["mode"] == "L" and info["jpeg_quality"] == 0 and rgb.shape == (32, 32, 3)
    with pytest.raises(ValueError, match="x.png: not a readable image"):
        decode(b"not an image", "x.png")


def test_pixel_features_and_pair_measures_by_hand():
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    f = pixel_features(red)
    assert f["mean_r"] == 1.0 and f["mean_g"] == 0.0 and f["std_r"] == 0.0
    assert f["luma"] == pytest.approx(0.299) and f["saturation"] == 1.0 and f["laplacian_var"] == 0.0
    real = np.full((8, 8, 3), 100, np.uint8)
    fake = real.copy()
    fake[2:4, 2:6] += 10  # changed inside the box only
    m = pair_measures(real, fake, (2, 2, 2, 4))
    assert m["psnr_mask_db"] == pytest.approx(10 * np.log10(255**2 / 100)) and m["outside_max_abs"] == 0.0
    assert m["psnr_db"] == pytest.approx(10 * np.log10(255**2 / (100 * 8 / 64)))
    assert pair_measures(real, real)["psnr_db"] == 99.0
    assert pair_measures(real, fake, (0, 0, 2, 2))["outside_max_abs"] == 10.0
    with pytest.raises(ValueError, match="differ in shape"):
        pair_measures(real, real[:4])


# ---------------------------------------------------------------- the audit on fixtures


def test_unbiased_fixture_passes(tmp_path):
    feats = file_features(benchmark(tmp_path))
    assert len(feats) == 300 and (feats["psnr_db"].notna() == (feats["label"] == 1)).all()  # fakes matched by id
    audit = file_audit(feats)
    det = audit["per_generator"]["gen"]["shortcut"]
    assert audit["ok"], audit["problems"]
    assert det["evaluated_on"] == "test" and det["n_test"] == 120 and det["ap"] < 0.6
    assert all(c["tvd"] == 0 for c in audit["per_generator"]["gen"]["categorical"].values())
    assert_no_file_shortcut(audit)
    assert "File-level audit passed" in "\n".join(file_audit_markdown(audit))


def test_jpeg_reals_against_png_fakes_fail_naming_the_format(tmp_path):
    audit = file_audit(file_features(benchmark(tmp_path, real_fmt="jpeg", n=(40, 30))))
    assert not audit["ok"]
    text = "\n".join(audit["problems"])
    assert "gen: file format differs between classes" in text and "jpeg: 1.00" in text
    det = audit["per_generator"]["gen"]["shortcut"]
    assert det["ap"] > 0.95
    assert {"jpeg_quality", "blockiness", "bytes_per_pixel"} & set(list(det["coefficients"])[:3])
    with pytest.raises(FileAuditError, match="format"):
        assert_no_file_shortcut(audit)


def test_different_sizes_per_class_fail_naming_the_dimensions(tmp_path):
    audit = file_audit(file_features(benchmark(tmp_path, fake_size=40, n=(40, 30))))
    text = "\n".join(audit["problems"])
    assert not audit["ok"] and "gen: file dimensions differs between classes (TVD 1.000" in text
    assert "48x48" in text and "40x40" in text
    assert "format" not in text and "mode" not in text  # one codec and mode for both classes
    assert audit["per_generator"]["gen"]["shortcut"]["ap"] > 0.95


def test_blurred_fakes_fail_on_the_shortcut_detector_naming_sharpness(tmp_path):
    audit = file_audit(file_features(benchmark(tmp_path, blur=1.0, n=(40, 30))))
    assert not audit["ok"] and len(audit["problems"]) == 1  # no categorical difference, only the detector
    problem = audit["problems"][0]
    assert problem.startswith("gen: a logistic regression on file-level features alone reaches AP")
    effects = audit["per_generator"]["gen"]["numeric"]
    assert effects["laplacian_var"]["effect_size"] < -1
    largest = problem.split("largest class differences")[1]
    assert "laplacian_var" in largest or "bytes_per_pixel" in largest


def test_policy_warns_or_fails(tmp_path):
    said = []
    audit = file_audit(file_features(benchmark(tmp_path, real_fmt="jpeg", n=(10, 10))))
    enforce(audit, "warn", said.append)
    assert said[0].startswith("file-level bias audit: WARNING (benchmark.bias_audit: warn)") and "format" in said[0]
    with pytest.raises(FileAuditError, match="gen: file format differs"):
        enforce(audit, "fail", said.append)
    enforce({"ok": True, "problems": []}, "fail", said.append)
    assert said[-1] == "file-level bias audit: passed"
    with pytest.raises(ValueError, match="warn or fail"):
        enforce(audit, "ignore")


def test_missing_split_falls_back_to_group_cross_validation(tmp_path):
    feats = file_features(benchmark(tmp_path, blur=1.0, n=(0, 30)))
    det = shortcut_detector(feats)
    assert det["evaluated_on"] == "cv-5" and det["ap"] > 0.9 and det["n_test"] == 60
    tiny = feats[feats["group"].isin(["test000"])]
    assert shortcut_detector(tiny)["ap"] is None  # one photo group: nothing to cross-validate


def test_features_of_a_few_thousand_small_pngs_are_fast(tmp_path):
    import time

    df = benchmark(tmp_path, n=(600, 400))  # 2000 PNGs of 48x48
    t0 = time.perf_counter()
    feats = file_features(df)
    assert len(feats) == 2000 and time.perf_counter() - t0 < 30  # ~3 ms a file on a busy core
