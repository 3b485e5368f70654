"""The retrospection check (hrr_core.evaluation.retrospection_check) on a previewed benchmark,
through the shipped retrospection LDM, before any detector trains (issue #17 item 3).

    python benchmarks/retrospection_preview.py --root /tmp/v2 [--msr v1|v2] [--strength S] [--steps N]

``--root``: a folder written by ``python -m hrr_core.pipeline.prepare --profile full --out-root``.
Rows: a sample of HRR's training set (train reals and ``ldm_img2img`` fakes, ``--train`` per class)
and of validation (``--val-reals`` reals, ``--val-fakes`` fakes per family); never a test row.
``--msr v1``: profile full's HRR MSR config; ``v2``: the documented v2 settings of docs/method.md
(native anchoring, lines into the diffusion input); ``--strength``/``--steps`` override its img2img
settings. Writes ``<root>/retrospection_check_<msr>[_s<strength>][_n<steps>].json``
and prints the mean residuals and the linear probe's validation AP. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import torch

from hrr_core.data.cache import RetrospectionDataset
from hrr_core.data.manifest import read_manifest
from hrr_core.evaluation.retrospection_check import retrospection_check
from hrr_core.retrospection import cache_key, compute_cache, prepare_ldm
from hrr_core.schema import load_config

V2 = {
    "anchor": "native",
    "scale_factors": [1.0, 2.0],
    "input_size": 64,
    "tiles": "grid",
    "noise_std": 0.01,
    "lines_into": "diffusion",
    "line_normalise": False,
    "line_beta": 1.0,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--msr", choices=["v1", "v2"], default="v1")
    parser.add_argument("--train", type=int, default=150)
    parser.add_argument("--val-reals", type=int, default=120)
    parser.add_argument("--val-fakes", type=int, default=50)
    parser.add_argument("--strength", type=float, default=None, help="img2img strength (default: the config's)")
    parser.add_argument("--steps", type=int, default=None, help="img2img DDIM steps (default: the config's)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = Path(args.root)
    msr_over = {**(V2 if args.msr == "v2" else {})}
    if args.strength is not None:
        msr_over["strength"] = args.strength
    if args.steps is not None:
        msr_over["num_steps"] = args.steps
    tag = (
        args.msr
        + (f"_s{args.strength:g}" if args.strength is not None else "")
        + (f"_n{args.steps}" if args.steps is not None else "")
    )
    extra = {"methods": {"hrr": {"model": {"msr": msr_over}}}} if msr_over else {}
    shipped = Path("data/retrospection_ldm").resolve()
    cfg = load_config(
        "params.yaml",
        "full",
        overrides={
            **extra,
            "retrospection": {"pretrained_vae_dir": str(shipped / "vae"), "pretrained_unet_dir": str(shipped / "unet")},
        },
    )
    manifest = read_manifest(root / "data" / "embedded" / "manifest.csv")
    train = manifest[(manifest["split"] == "train") & manifest["generator"].isin(["real", "ldm_img2img"])]
    train = pd.concat([g.sample(n=min(len(g), args.train), random_state=0) for _, g in train.groupby("label")])
    val = manifest[manifest["split"] == "val"]
    val = pd.concat(
        [
            g.sample(n=min(len(g), args.val_reals if gen == "real" else args.val_fakes), random_state=0)
            for gen, g in val.groupby("generator")
        ]
    )
    rows = pd.concat([train, val]).sort_values("id").reset_index(drop=True)
    rows.attrs = manifest.attrs
    print(
        f"{len(rows)} rows: "
        + ", ".join(f"{s}/{g} {n}" for (s, g), n in rows.groupby(["split", "generator"]).size().items())
    )
    rcfg = cfg.retrospection_config()
    t0 = time.perf_counter()
    ldm, _ = prepare_ldm(rcfg, [], root / "models" / "retrospection_ldm", torch.device("cpu"))
    msr = cfg.model_config("hrr").msr
    cost = compute_cache(rows, ldm, msr, rcfg, root / "retrospection", log=lambda s: print(s, flush=True))
    print(f"cache: {cost['computed']} computed, {time.perf_counter() - t0:.0f} s ({cost['ms_per_image']} ms/image)")
    data = RetrospectionDataset(rows, root / "retrospection" / cache_key(msr, rcfg))
    resolved = msr.resolved()
    rep = resolved.representation if resolved.retrospection else "image"
    out = retrospection_check(rows, data, rep, resolved.scale_factors, 0)
    out["msr"] = args.msr
    out["img2img"] = {"strength": resolved.strength, "num_steps": resolved.num_steps}
    (root / f"retrospection_check_{tag}.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out["mean_abs_residual"]))
    print(json.dumps(out["probe"]))


if __name__ == "__main__":
    main()
