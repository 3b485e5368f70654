"""Cost of HRR against the plain CNN and a DIRE-style reconstruction, measured in one run.

    python benchmarks/hrr_cost.py [--size 64] [--batch 16] [--repeats 3] [--profile default]

Prints ms/image for: MSR retrospection (per image and per scale), HRR forward on cached
representations, the plain CNN forward, and DIRE's 20-step DDIM inversion + reconstruction
through the same diffusion model at the same input size; then the two ratios the design
targets (retrospection >= 5x cheaper than the 20-step reconstruction; cached HRR inference
<= 3x the plain CNN). Weights are randomly initialised: the cost does not depend on them.
A benchmark, not a test: numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import time

import torch

from hrr_core.models.classifier import BinaryClassifier
from hrr_core.models.hrr import HRRDetector
from hrr_core.models.ldm import LatentDiffusion
from hrr_core.models.msr import retrospect
from hrr_core.schema import load_config


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--dire-steps", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    cfg = load_config("params.yaml", args.profile)
    hrr_cfg = cfg.model_config("hrr")
    ldm = LatentDiffusion.create(cfg.retrospection_config().ldm).eval()
    images = torch.rand(args.batch, 3, args.size, args.size)
    hrr = HRRDetector(hrr_cfg).eval()
    cnn = BinaryClassifier(cfg.model_config("cnn")).eval()
    k = hrr_cfg.msr.resolved().num_scales
    with torch.no_grad():
        reps = retrospect(list(images), ldm, hrr_cfg.msr, torch.Generator().manual_seed(0))
        t_msr = timed(
            lambda: retrospect(list(images), ldm, hrr_cfg.msr, torch.Generator().manual_seed(0)), args.repeats
        )
        t_hrr = timed(lambda: hrr(reps), args.repeats)
        t_cnn = timed(lambda: cnn(images), args.repeats)
        t_dire = timed(lambda: ldm.ddim_invert_reconstruct(images, args.dire_steps), max(1, args.repeats - 1))
    per = lambda t: 1000 * t / args.batch  # noqa: E731
    print(f"input {args.size}px, batch {args.batch}, K={k}, threads {torch.get_num_threads()}, profile {args.profile}")
    print(
        f"retrospection (MSR, {hrr_cfg.msr.num_steps} DDIM steps): {per(t_msr):8.1f} ms/image  ({per(t_msr) / k:.1f} "
        "per scale)"
    )
    print(f"HRR forward on cached representations: {per(t_hrr):8.1f} ms/image")
    print(f"plain CNN forward:                      {per(t_cnn):8.1f} ms/image")
    print(f"DIRE {args.dire_steps}-step inversion + reconstruction: {per(t_dire):8.1f} ms/image")
    print(f"ratio DIRE reconstruction / HRR retrospection: {t_dire / t_msr:.1f}x (goal >= 5x)")
    print(f"ratio cached HRR inference / plain CNN:        {t_hrr / t_cnn:.1f}x (goal <= 3x)")


if __name__ == "__main__":
    main()
