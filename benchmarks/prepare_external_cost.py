"""Cost of the prepare stage on a real-benchmark layout: manifest build and harmonisation, per 10k images.

    python benchmarks/prepare_external_cost.py [--n 500] [--size 256 512] [--repeats 3]

Writes a GenImage-layout tree of ``n`` JPEG reals (q 96) and ``n`` PNG fakes of noise-free
smooth content at each ``size`` into a temporary folder, then times
``hrr_core.benchmark.external.build_stage_manifest`` (adapter walk + header probe, then
harmonisation to JPEG q 96) for each resize policy; median of ``repeats``. A benchmark, not a
test: figures depend on the machine and its load, and cold or network storage adds the open
latency of every file.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from hrr_core.benchmark.external import build_stage_manifest
from hrr_core.confutil import from_dict
from hrr_core.schema.benchmark import RealBenchmarkConfig


def make_tree(root: Path, n: int, size: int) -> None:
    """``sd14`` train folders of GenImage: ``n`` JPEG reals and ``n`` PNG fakes (smooth gradients + noise)."""
    rng = np.random.default_rng(0)
    base = root / "imagenet_ai_0419_sdv4" / "train"
    for sub in ("nature", "ai"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    for i in range(n):
        img = (
            (ramp[None, :, None] * 0.5 + ramp[:, None, None] * 0.3 + rng.normal(0, 12, (size, size, 3)))
            .clip(0, 255)
            .astype(np.uint8)
        )
        Image.fromarray(img).save(base / "nature" / f"n01440764_{i}.JPEG", "JPEG", quality=96)
        Image.fromarray(img[::-1].copy()).save(base / "ai" / f"000_sdv4_{i:05d}.png", "PNG")


def time_prepare(root: Path, out: Path, harmonise: dict | None, repeats: int) -> tuple[float, float, int]:
    """Median (manifest_s, harmonise_s) over ``repeats`` and the number of images."""
    sel = from_dict(
        RealBenchmarkConfig, {"source": "genimage", "root": str(root), "harmonise": harmonise}, "real_benchmark"
    )
    runs = []
    for _ in range(repeats):
        df, stats = build_stage_manifest(sel, out, echo=lambda *_: None)
        runs.append((stats["manifest_s"], stats["harmonise_s"]))
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), len(df)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="reals and fakes each")
    parser.add_argument("--size", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    policies = {
        "none": None,
        "jpeg96/none": {"format": "jpeg", "resize": "none"},
        "jpeg96/center_crop256": {"format": "jpeg", "resize": "center_crop", "size": 256},
        "jpeg96/resize_short256": {"format": "jpeg", "resize": "resize_short", "size": 256},
    }
    for size in args.size:
        with tempfile.TemporaryDirectory(prefix="hrr-prepare-cost-") as tmp:
            make_tree(Path(tmp) / "bench", args.n, size)
            for name, harmonise in policies.items():
                m, h, n = time_prepare(Path(tmp) / "bench", Path(tmp) / "out", harmonise, args.repeats)
                print(
                    f"{size}px {name:24s} {n} images: manifest {m:.2f}s ({m / n * 1e4:.1f} s/10k), "
                    f"harmonise {h:.2f}s ({h / n * 1e4 / 60:.1f} min/10k)"
                )


if __name__ == "__main__":
    main()
