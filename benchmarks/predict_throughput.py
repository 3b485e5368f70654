"""Inference throughput of a trained checkpoint over a folder (images/s), as hrr-detect runs it.

    python benchmarks/predict_throughput.py models/hrr data/embedded/images/test [--batch-size 16] [--workers 2]
    python benchmarks/predict_throughput.py --tiny 64 256 [--files 256] [--workers 0 2]
    python benchmarks/predict_throughput.py models/cnn --synthetic 64 256 [--files 64] [--workers 0 2]

Reports the checkpoint's load time, the decode-only rate (load_image + to_tensor in this process,
the floor any detector pays) and the end-to-end rate of ``Detector.predict_paths`` after one
warm-up batch, for each ``--workers`` value; for HRR the end-to-end figure includes re-rendering
every image through the LDM on the fly. ``--tiny SIZE ...`` needs no trained model: it saves a tiny
untrained CNN (small_resnet, ``--tiny-width``) with its card and ``--files`` random PNGs per size in
a temporary folder and measures those; ``--synthetic SIZE ...`` measures the given checkpoint on such
PNGs instead of on ``inputs``. A benchmark, not a test: figures depend on the machine and
its load (say which CPU gave them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hrr_core.data.transforms import to_tensor
from hrr_core.data.walk import expand_inputs
from hrr_core.inference import load_detector
from hrr_core.io import image_to_array, load_image


def cpu_name() -> str:
    """The CPU's model name (``lscpu``'s "Model name" on Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def tiny_checkpoint(root: Path, width: int) -> Path:
    """A small_resnet BinaryClassifier (untrained) saved with its detector card under ``root``."""
    from hrr_core.card import write_detector_card
    from hrr_core.confutil import to_dict
    from hrr_core.models.backbones import BackboneConfig
    from hrr_core.models.classifier import BinaryClassifier, ClassifierConfig
    from hrr_core.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = ClassifierConfig(backbone=BackboneConfig(name="small_resnet", pretrained=False, width=width))
    model_dir = root / "tiny_cnn"
    model = BinaryClassifier(cfg).eval()
    save_checkpoint(model_dir / "best", model, None, None, None, 0, 0, None, {"model": to_dict(cfg)})
    write_detector_card(
        model_dir,
        method="tiny_cnn",
        kind="classifier",
        baseline=None,
        model_config=to_dict(cfg),
        train_generators=[],
        profile="benchmark",
        threshold=None,
        val_metrics={},
        data_summary={},
    )
    return model_dir


def random_pngs(folder: Path, size: int, n: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(size)
    for k in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{k:05d}.png")
    return folder


def measure(
    checkpoint, inputs, batch_size: int, workers: list[int], device: str, limit: int | None, px: int | None = None
) -> list[dict]:
    """One row per ``workers`` value: load time, decode-only rate and end-to-end images/s (``px``: the
    synthetic images' size, recorded in the row)."""
    files, failures = expand_inputs(inputs)
    files = files[:limit] if limit else files
    t0 = time.perf_counter()
    detector = load_detector(checkpoint, device)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for f in files:
        try:
            to_tensor(image_to_array(load_image(f)))
        except ValueError:
            pass
    decode_s = time.perf_counter() - t0
    detector.predict_paths(files[:batch_size], batch_size=batch_size)  # warm-up
    rows = []
    for w in workers:
        t0 = time.perf_counter()
        report = detector.predict_paths(files, batch_size=batch_size, workers=w)
        predict_s = time.perf_counter() - t0
        n = len(report.results)
        rows.append(
            {
                **({"px": px} if px else {}),
                "model": detector.model_id,
                "kind": detector.kind,
                "device": str(detector.device),
                "threads": torch.get_num_threads(),
                "workers": w,
                "batch_size": batch_size,
                "cpu": cpu_name(),
                "cpus": os.cpu_count(),
                "files": len(files),
                "scored": n,
                "failed": len(report.failures) + len(failures),
                "load_s": round(load_s, 2),
                "decode_images_per_s": round(len(files) / max(decode_s, 1e-9), 1),
                "images_per_s": round(n / max(predict_s, 1e-9), 1),
                "ms_per_image": round(1000 * predict_s / max(n, 1), 2),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", help="a model folder with detector.json, e.g. models/hrr")
    parser.add_argument("inputs", nargs="*", help="image files, folders or globs")
    parser.add_argument(
        "--tiny", type=int, nargs="+", metavar="SIZE", help="measure a tiny CNN on SIZE x SIZE PNGs instead"
    )
    parser.add_argument(
        "--synthetic", type=int, nargs="+", metavar="SIZE", help="measure the checkpoint on SIZE x SIZE random PNGs"
    )
    parser.add_argument("--tiny-width", type=int, default=8, help="small_resnet width of the tiny CNN (default 8)")
    parser.add_argument("--files", type=int, default=256, help="PNGs per size with --tiny/--synthetic (default 256)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="decoding processes to compare")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many files")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.tiny and (args.checkpoint or args.synthetic):
        parser.error("--tiny makes its own checkpoint: give neither a checkpoint nor --synthetic")
    if not args.tiny and not (args.checkpoint and (args.inputs or args.synthetic)):
        parser.error("give a checkpoint and inputs (or --synthetic SIZE ...), or --tiny SIZE ...")
    if args.inputs and args.synthetic:
        parser.error("give inputs or --synthetic SIZE ..., not both")
    if args.inputs:
        return measure(args.checkpoint, args.inputs, args.batch_size, args.workers, args.device, args.limit)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hrr-predict-bench-") as tmp:
        checkpoint = tiny_checkpoint(Path(tmp), args.tiny_width) if args.tiny else args.checkpoint
        for size in args.tiny or args.synthetic:
            folder = random_pngs(Path(tmp) / f"png{size}", size, args.files)
            rows += measure(checkpoint, [folder], args.batch_size, args.workers, args.device, args.limit, size)
    return rows


if __name__ == "__main__":
    main()
