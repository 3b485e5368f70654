"""Inference throughput of a trained checkpoint over a folder (images/s), as hrr-detect runs it.

    python benchmarks/predict_throughput.py models/hrr data/embedded/images/test [--batch-size 16] [--threads 2]

Reports the checkpoint's load time, the decode-only rate (load_image + to_tensor, the floor any
detector pays) and the end-to-end rate of ``Detector.predict_paths`` after one warm-up batch;
for HRR the end-to-end figure includes re-rendering every image through the LDM on the fly.
A benchmark, not a test: figures depend on the machine and its load (say which CPU gave them).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from hrr_core.data.transforms import to_tensor
from hrr_core.io import image_to_array, load_image
from hrr_core.predict import expand_inputs, load_detector


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a model folder with detector.json, e.g. models/hrr")
    parser.add_argument("inputs", nargs="+", help="image files, folders or globs")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many files")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    files, failures = expand_inputs(args.inputs)
    files = files[: args.limit] if args.limit else files
    t0 = time.perf_counter()
    detector = load_detector(args.checkpoint, args.device)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for f in files:
        try:
            to_tensor(image_to_array(load_image(f)))
        except ValueError:
            pass
    decode_s = time.perf_counter() - t0
    detector.predict_paths(files[: args.batch_size], batch_size=args.batch_size)  # warm-up
    t0 = time.perf_counter()
    report = detector.predict_paths(files, batch_size=args.batch_size)
    predict_s = time.perf_counter() - t0
    n = len(report.results)
    out = {"model": detector.model_id, "kind": detector.kind, "device": str(detector.device), "threads": torch.get_num_threads(),
           "cpu": platform.processor() or platform.machine(), "files": len(files), "scored": n,
           "failed": len(report.failures) + len(failures), "load_s": round(load_s, 2),
           "decode_images_per_s": round(len(files) / max(decode_s, 1e-9), 1),
           "images_per_s": round(n / max(predict_s, 1e-9), 2), "ms_per_image": round(1000 * predict_s / max(n, 1), 1)}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
