"""Realism gates per family on real files: content-matched fakes that pass, and one family
failing each gate; inpainting families measured inside their mask."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from hrr_core.benchmark.audit import bias_audit, dataset_card
from hrr_core.benchmark.file_audit import file_audit, file_features
from hrr_core.benchmark.gates import family_gates, gate, gates_markdown, is_inpainting, realism_gates

SIZE = 32
BOX = (8, 4, 12, 20)  # top, left, h, w


def photo(rng):
    lo = rng.uniform(30, 220, (4, 4, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(lo).resize((SIZE, SIZE), Image.BILINEAR), np.float64)
    return np.clip(base + rng.normal(0, 8, (SIZE, SIZE, 1)), 0, 255).round().astype(np.uint8)


def _noise(rng, img, sigma):
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).round().astype(np.uint8)


def _inpaint(rng, img, leak=False):
    out = img.copy()
    t, left, h, w = BOX
    out[t : t + h, left : left + w] = _noise(rng, img[t : t + h, left : left + w], 3)
    if leak:
        out[0, 0] = np.clip(out[0, 0].astype(int) + 9, 0, 255)
    return out


FAMILIES = {
    "close": lambda rng, x: _noise(rng, x, 3),  # ~38 dB, same colour and sharpness
    "bright": lambda rng, x: np.clip(x * 1.07, 0, 255).round().astype(np.uint8),  # luma x 1.07, same saturation
    "blurry": lambda rng, x: np.asarray(Image.fromarray(x).filter(ImageFilter.GaussianBlur(1.5))),
    "far": lambda rng, x: photo(rng),  # unrelated content: low PSNR
    "sd_inpaint": _inpaint,
    "leaky_inpaint": lambda rng, x: _inpaint(rng, x, leak=True),
}


@pytest.fixture()
def bench(tmp_path):
    rng = np.random.default_rng(0)
    rows = []

    def add(rid, label, gen, split, img, box=None):
        rel = f"{split}/{gen}/{rid}.png"
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp_path / rel)
        mask = dict(zip(("mask_top", "mask_left", "mask_h", "mask_w"), box or (np.nan,) * 4))
        rows.append(
            {"id": rid, "path": rel, "label": label, "generator": gen, "source": rid, "photo": rid, "split": split}
            | {"width": SIZE, "height": SIZE, "format": "png", "quality": 0, **mask}
        )

    for split, n in (("train", 12), ("test", 8)):
        for i in range(n):
            rid = f"{split}{i}"
            real = photo(rng)
            add(rid, 0, "real", split, real)
            for fam, make in FAMILIES.items():
                add(f"{rid}-{fam}", 1, fam, split, make(rng, real), BOX if is_inpainting(fam) else None)
    df = pd.DataFrame(rows)
    df.attrs["root"] = str(tmp_path)
    return df


def test_each_gate_fails_the_family_made_to_fail_it(bench):
    feats = file_features(bench)
    ap = {f: 0.6 for f in FAMILIES} | {"close": 0.95}  # the trivial AP is an input
    g = realism_gates(feats, ap)
    fam = g["families"]
    failing = {f: sorted(k for k, v in e["gates"].items() if not v["passed"]) for f, e in fam.items()}
    assert failing == {
        "close": ["trivial_ap"],
        "bright": ["luma_diff"],
        "blurry": ["laplacian_ratio"],
        "far": ["psnr_db"],
        "sd_inpaint": [],
        "leaky_inpaint": ["outside_mask_max_abs"],
    }
    real_luma = feats.loc[feats["label"] == 0, "luma"].mean()
    assert fam["bright"]["gates"]["luma_diff"]["value"] == pytest.approx(0.07 * real_luma, abs=2e-3)
    assert fam["blurry"]["gates"]["laplacian_ratio"]["value"] < 0.5
    close, inpaint = fam["close"]["gates"], fam["sd_inpaint"]
    assert close["psnr_db"]["value"] > 35 and close["trivial_ap"]["threshold"] == 0.9
    assert fam["leaky_inpaint"]["gates"]["outside_mask_max_abs"]["value"] == 9.0
    assert inpaint["psnr_scope"] == "mask" and inpaint["gates"]["outside_mask_max_abs"]["value"] == 0
    assert "outside_mask_max_abs" not in fam["close"]["gates"]
    assert g["summary"] == "1 of 6 families pass all gates" and g["n_pass"] == 1 and not g["target_met"]
    assert fam["sd_inpaint"]["passes_all"] and not fam["close"]["passes_all"]


def test_inpainting_psnr_is_measured_inside_the_mask(bench):
    feats = file_features(bench)
    e = family_gates(feats, "sd_inpaint", 0.5)
    inside = feats.loc[feats["generator"] == "sd_inpaint", "psnr_mask_db"].median()
    whole = feats.loc[feats["generator"] == "sd_inpaint", "psnr_db"].median()
    assert e["gates"]["psnr_db"]["value"] == pytest.approx(inside, abs=1e-4) and whole > inside + 3


def test_unmeasured_gates_fail_and_the_ops():
    assert gate(None, ">=", 25.0) == {"value": None, "op": ">=", "threshold": 25.0, "passed": False}
    assert gate(float("nan"), "<", 0.9)["passed"] is False
    assert gate(0.5, "in", (0.5, 2.0))["passed"] and not gate(2.1, "in", (0.5, 2.0))["passed"]
    assert gate(0.123456, "<=", 0.2)["value"] == 0.1235
    with pytest.raises(ValueError, match="op must be"):
        gate(1.0, "==", 1.0)


def test_no_trivial_ap_given_fails_that_gate(bench):
    feats = file_features(bench[bench["generator"].isin(["real", "close"])])
    assert realism_gates(feats)["families"]["close"]["gates"]["trivial_ap"]["passed"] is False


def test_dataset_card_has_the_gates_table_and_the_file_audit(bench):
    feats = file_features(bench)
    g = realism_gates(feats, {f: 0.6 for f in FAMILIES})
    lines = gates_markdown(g)
    row = next(ln for ln in lines if ln.startswith("| bright |"))
    assert "FAIL" in row.split(" | ")[2] and row.endswith("| FAIL |")
    assert any("outside-mask" in ln for ln in lines)
    stats = {f: {"fit_seconds": 1, "generate_seconds": 1, "psnr_db": 30.0} for f in FAMILIES}
    card = dataset_card(
        bench, bias_audit(bench), stats, {f: 0.6 for f in FAMILIES}, {}, file_audit=file_audit(feats), gates=g
    )
    assert "## Realism gates" in card and row in card and "## File-level bias audit" in card
    assert "realism gates: 2 of 6 families pass all gates" in card
