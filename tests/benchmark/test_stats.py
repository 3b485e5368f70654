"""Per-image statistics on hand-checkable images, and their per-generator summary on a tiny
manifest written to disk."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hrr_core.benchmark.audit import bias_audit, dataset_card
from hrr_core.benchmark.stats import (
    generator_image_stats,
    hf_fraction,
    image_stats,
    intensity,
    laplacian_var,
    matched_mad,
    saturation,
    stats_markdown,
)


def grey(values: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(values, dtype=np.uint8)[..., None], 3, axis=2)  # (H, W, 3)


def checkerboard(n: int = 16) -> np.ndarray:
    return grey(((np.indices((n, n)).sum(0) % 2) * 255))


def test_constant_image_has_no_high_frequencies_and_no_laplacian():
    img = grey(np.full((32, 24), 77))
    st = image_stats(img)
    assert st["hf_fraction"] == 0.0 and st["laplacian_var"] == 0.0 and st["saturation"] == 0.0
    assert st["intensity"] == pytest.approx(77 / 255)


def test_checkerboard_is_all_high_frequency_with_known_laplacian_variance():
    img = checkerboard()
    assert hf_fraction(img) == pytest.approx(1.0, abs=1e-12)
    assert laplacian_var(img) == pytest.approx(1020.0**2)  # |4 * 255| at every interior pixel, mean 0
    assert intensity(img) == pytest.approx(0.5)


def test_slow_cosine_is_all_low_frequency_and_a_ramp_has_no_laplacian():
    cols = np.arange(60)
    wave = grey(np.tile(np.round(128 + 100 * np.cos(2 * np.pi * cols / 6)), (60, 1)))  # 1/6 cycle/px, exact in uint8
    assert hf_fraction(wave) == pytest.approx(0.0, abs=1e-12)
    ramp = grey(np.tile(np.arange(0, 200, 4), (20, 1)))  # linear in x
    assert laplacian_var(ramp) == pytest.approx(0.0, abs=1e-9)


def test_colour_statistics_by_hand():
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    assert intensity(red) == pytest.approx(0.299) and saturation(red) == pytest.approx(1.0)
    pink = np.broadcast_to(np.array([200, 100, 100], np.uint8), (4, 4, 3))
    assert saturation(pink) == pytest.approx(0.5)
    assert saturation(np.zeros((4, 4, 3), np.uint8)) == 0.0  # black: saturation defined as 0


def test_matched_mad_and_input_checks():
    a = grey(np.full((8, 8), 10))
    assert matched_mad(a, grey(np.full((8, 8), 13))) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="differ in shape"):
        matched_mad(a, grey(np.full((8, 9), 13)))
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        intensity(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="3x3"):
        laplacian_var(grey(np.zeros((2, 8))))


def _save(root, rel, img):
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(root / rel)
    return {"path": rel, "width": img.shape[1], "height": img.shape[0]}


@pytest.fixture()
def manifest(tmp_path):
    """Two real crops (sizes 8 and 12) per split, a fake family 'plus5' (each real + 5) and an
    unmatched family 'other' (ids without a real)."""
    rows = []
    for split in ("train", "test"):
        for size in (8, 12):
            rid = f"p-{split}-s{size}"
            real = grey(np.full((size, size), 100))
            rows.append(
                {"id": rid, "label": 0, "generator": "real", "split": split, **_save(tmp_path, f"{rid}.png", real)}
            )
            rows.append(
                {
                    "id": f"{rid}-plus5",
                    "label": 1,
                    "generator": "plus5",
                    "split": split,
                    **_save(tmp_path, f"{rid}-plus5.png", real + 5),
                }
            )
            rows.append(
                {
                    "id": f"x-{split}-s{size}-other",
                    "label": 1,
                    "generator": "other",
                    "split": split,
                    **_save(tmp_path, f"x{split}{size}.png", checkerboard(size)),
                }
            )
    df = pd.DataFrame(rows).assign(source="g", format="png", quality=0)
    df.attrs["root"] = str(tmp_path)
    return df


def test_generator_summary(manifest):
    stats = generator_image_stats(manifest)
    assert set(stats) == {"real", "plus5", "other"}
    assert stats["real"]["n"] == 4 and stats["real"]["sizes"] == {"8x8": 2, "12x12": 2}
    assert stats["real"]["matched_mad"] is None and stats["other"]["matched_mad"] is None
    assert stats["plus5"]["matched_mad"] == {"mean": 5.0, "std": 0.0}
    assert stats["plus5"]["intensity"]["mean"] == pytest.approx(105 / 255, abs=1e-4)
    assert stats["other"]["hf_fraction"]["mean"] == pytest.approx(1.0, abs=1e-4)
    assert stats["real"]["laplacian_var"] == {"mean": 0.0, "std": 0.0}


def test_split_filter_and_empty_split(manifest):
    assert generator_image_stats(manifest, "test")["real"]["n"] == 2
    with pytest.raises(ValueError, match="no images in split 'val'"):
        generator_image_stats(manifest, "val")


def test_markdown_and_dataset_card_section(manifest):
    stats = generator_image_stats(manifest)
    lines = stats_markdown(stats)
    rows = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| generator")]
    assert [r.split(" | ")[0] for r in rows] == ["| real", "| other", "| plus5"]  # reals first
    assert "| 5.00 ± 0.00 |" in rows[2] and rows[0].endswith("| – |")
    gen_stats = {"plus5": {"fit_seconds": 1, "generate_seconds": 1, "psnr_db": 30.0}}
    card = dataset_card(manifest, bias_audit(manifest), gen_stats, {"plus5": 0.5}, {}, image_stats=stats)
    assert "## Image statistics" in card and rows[2] in card
    assert "## Image statistics" not in dataset_card(manifest, bias_audit(manifest), gen_stats, {"plus5": 0.5}, {})
