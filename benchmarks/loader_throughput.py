"""Data-loading throughput on the embedded benchmark (images/s), for 0..N workers.

    python benchmarks/loader_throughput.py [--manifest data/embedded/manifest.csv] [--workers 0 2] [--batch 32]

Streams images from the manifest exactly as the train stage does (size-bucketed batches, decode
+ conversion to float tensors); memory stays bounded by the manifest, not the images. Run after
`dvc repro prepare`. A benchmark, not a test: figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import resource
import time

from torch.utils.data import DataLoader

from hrr_core.data.datasets import ManifestImageDataset, SizeBucketBatchSampler, collate
from hrr_core.data.manifest import read_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default="data/embedded/manifest.csv")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--limit", type=int, default=2000, help="images per measurement")
    args = parser.parse_args()
    df = read_manifest(args.manifest)
    df = df.sample(min(args.limit, len(df)), random_state=0)
    ds = ManifestImageDataset(df)
    for workers in args.workers:
        loader = DataLoader(
            ds,
            batch_sampler=SizeBucketBatchSampler(ds.sizes, args.batch, shuffle=True, seed=0),
            collate_fn=collate,
            num_workers=workers,
            persistent_workers=False,
        )
        t0, n = time.perf_counter(), 0
        for batch in loader:
            n += len(batch["ids"])
        dt = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"workers={workers}: {n} images in {dt:.2f}s = {n / dt:.0f} images/s (peak RSS of this process {rss:.0f} "
            "MiB)"
        )


if __name__ == "__main__":
    main()
