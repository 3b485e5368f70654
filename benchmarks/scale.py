"""Scale of the real-benchmark path: wall time and peak memory of prepare and hrr-detect at N images.

    python benchmarks/scale.py [--sizes 1000 10000 100000] [--workers 0] [--batch-size 64] [--out scale.json]

For each N it writes a synthetic ``folder``-kind benchmark (``<root>/{train,val,test}/synth/{real,fake}/``:
N/2 JPEG reals and N/2 PNG fakes, 32, 48 and 64 px in turn, 80/10/10 split) and runs, each step in its
own subprocess:

- ``make``     writing the images (for scale only; not part of the pipeline);
- ``prepare``  :func:`hrr_core.benchmark.external.build_stage_manifest`, the real-benchmark ``prepare``
               path: adapter discovery, streamed walk, header probe, manifest, harmonisation of every
               image (the default policy: JPEG q 96, no resize) and the stage manifest;
- ``detect``   ``hrr-detect <root> --output preds.csv --quiet`` with a tiny untrained small_resnet
               (``predict_throughput.tiny_checkpoint``: the model's cost is not what is measured here,
               the walk, decoding, bucketing and bookkeeping around it are).

Measured per step: wall seconds, peak RSS (``ru_maxrss`` of the step's process tree from ``os.wait4``:
the largest single process, so with ``--workers`` a worker's own memory is not added to the main
process's) and microseconds per image. Every run is checked (:func:`check_outputs`): every file is in
the manifests, harmonised once and scored once.

The claim under test: time grows linearly in N (per-image cost flat) and peak memory stays bounded,
because files are streamed (walk, probe, harmonise, decode) and never held decoded. What does grow
with N is per-row metadata (the manifest tables, the file list, one score per file). Measured on a
2-core CPU at 1k/10k/100k (README, "Scale and throughput"): time is linear (per-image cost flat or
falling); ``detect``'s peak RSS grows under 1 KB per image (file list and scores), ``prepare``'s
about 2 KB per image (the pandas manifest tables held through harmonisation: linear, not bounded;
~2 GB at 1M images). A benchmark, not a test: figures depend on the machine, its disk and its load
(say which CPU gave them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

SIDES = (32, 48, 64)  # px, in turn: three size buckets for hrr-detect
SPLIT_SHARES = (("train", 0.8), ("val", 0.1), ("test", 0.1))
SCRIPT = Path(__file__).resolve()


@dataclass
class Measured:
    """One step of one size: wall seconds, peak RSS of its process tree (MiB), exit status, load."""

    n: int
    step: str
    seconds: float
    peak_rss_mib: float
    us_per_image: float
    returncode: int
    load_1min: float = 0.0  # the machine's load average when the step ended (other work skews the figures)


def split_of(k: int, n_per_class: int) -> str:
    """The split of the ``k``-th image of a class: the first 80 % train, then 10 % val, 10 % test."""
    edge = 0.0
    for split, share in SPLIT_SHARES:
        edge += share
        if k < round(edge * n_per_class):
            return split
    return SPLIT_SHARES[-1][0]


def make_benchmark(root: Path, n: int, seed: int = 0) -> dict[str, int]:
    """Write ``n`` small images (``n // 2`` real JPEGs, the rest fake PNGs) in the folder layout;
    every file has distinct pixels. Returns the counts per ``split/label``."""
    rng = np.random.default_rng(seed)
    ramps = {s: np.add.outer(np.arange(s), np.arange(s)).astype(np.int16)[..., None] * (96 // s) for s in SIDES}
    counts: dict[str, int] = {}
    for label, name, n_class, ext in ((0, "real", n // 2, ".jpg"), (1, "fake", n - n // 2, ".png")):
        for split, _ in SPLIT_SHARES:
            (root / split / "synth" / name).mkdir(parents=True, exist_ok=True)
        for k in range(n_class):
            side = SIDES[k % len(SIDES)]
            pixels = (ramps[side] + rng.integers(0, 160, (side, side, 3), dtype=np.int16)).astype(np.uint8)
            split = split_of(k, n_class)
            path = root / split / "synth" / name / f"{name}_{k:06d}{ext}"
            if label == 0:
                Image.fromarray(pixels).save(path, "JPEG", quality=90)
            else:
                Image.fromarray(pixels).save(path, "PNG")
            counts[f"{split}/{label}"] = counts.get(f"{split}/{label}", 0) + 1
    return counts


def prepare(bench: Path, out: Path) -> dict:
    """The real-benchmark prepare path over ``bench`` into ``out`` (kind ``folder``, default
    harmonisation); its stats are also written to ``out/prepare_stats.json``."""
    from hrr_core.benchmark.external import build_stage_manifest
    from hrr_core.confutil import from_dict
    from hrr_core.schema.benchmark import RealBenchmarkConfig

    sel = from_dict(RealBenchmarkConfig, {"source": "folder", "root": str(bench)}, "real_benchmark")
    df, stats = build_stage_manifest(sel, out, echo=lambda *_: None)
    stats = {"rows": len(df), **stats}
    (out / "prepare_stats.json").write_text(json.dumps(stats))
    return stats


# A small launcher between this process and a step: a child's ru_maxrss starts from its parent's
# resident size (Linux keeps it across exec), so forking from this torch-importing process would
# report at least this process's memory. The launcher is a bare interpreter (about 10 MiB).
LAUNCHER = (
    "import os, subprocess, sys; p = subprocess.Popen(sys.argv[2:]); _, s, u = os.wait4(p.pid, 0); "
    "open(sys.argv[1], 'w').write(str(u.ru_maxrss)); sys.exit(os.waitstatus_to_exitcode(s))"
)


def measured(cmd: list[str], n: int, step: str) -> Measured:
    """Run ``cmd`` through :data:`LAUNCHER` (its output discarded unless it fails) and measure it:
    wall seconds and the ``ru_maxrss`` (KiB on Linux) that ``os.wait4`` reports for it."""
    with tempfile.NamedTemporaryFile("r", suffix=".maxrss") as rss:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-S", "-c", LAUNCHER, rss.name, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        seconds = time.perf_counter() - t0
        peak_kib = int(rss.read() or 0)
    if proc.returncode != 0:
        sys.stderr.write(f"{step} at n={n} exited {proc.returncode}:\n{proc.stderr.decode(errors='replace')[-3000:]}\n")
    return Measured(
        n,
        step,
        round(seconds, 2),
        round(peak_kib / 1024, 1),
        round(1e6 * seconds / n, 1),
        proc.returncode,
        round(os.getloadavg()[0], 2),
    )


def check_outputs(bench: Path, out: Path, preds: Path, n: int) -> list[str]:
    """What is wrong with one run's outputs (empty: every image is in the source and stage manifests,
    harmonised once, and scored once by hrr-detect)."""
    from hrr_core.data.walk import iter_image_files, rel_posix

    problems = []
    files = {rel_posix(p, str(bench)) for p in iter_image_files(bench)}
    if len(files) != n:
        problems.append(f"{len(files)} images on disk, expected {n}")
    source = pd.read_csv(out / "source" / "manifest.csv", dtype=str, keep_default_na=False)
    if set(source["path"]) != files or len(source) != n:
        problems.append(f"source manifest has {len(source)} rows, {len(set(source['path']) ^ files)} paths differ")
    stage = pd.read_csv(out / "manifest.csv", dtype=str, keep_default_na=False)
    harmonised = list(iter_image_files(out / "harmonised"))
    if len(stage) != n or len(harmonised) != n or not all((out / p).is_file() for p in stage["path"]):
        problems.append(f"stage manifest {len(stage)} rows, {len(harmonised)} harmonised files, expected {n}")
    counts = stage.groupby(["split", "label"]).size()
    expected = {f"{s}/{lab}": c for (s, lab), c in counts.items()}
    made = json.loads((bench / "counts.json").read_text()) if (bench / "counts.json").is_file() else expected
    if expected != made:
        problems.append(f"split/label counts {expected}, written {made}")
    if not preds.is_file():
        return [*problems, f"{preds}: hrr-detect wrote no predictions"]
    scored = pd.read_csv(preds)
    scored_rel = {rel_posix(p, str(bench)) for p in scored["path"]}
    if len(scored) != n or scored_rel != files:
        problems.append(f"hrr-detect scored {len(scored)} files ({len(scored_rel ^ files)} paths differ), expected {n}")
    if not scored["prob_generated"].between(0, 1).all():
        problems.append("a probability outside [0, 1]")
    return problems


def run_size(
    n: int, work: Path, checkpoint: Path, workers: int, batch_size: int
) -> tuple[list[Measured], dict, list[str]]:
    """The three steps at ``n`` images under ``work``: measurements, prepare's own stats, problems."""
    bench, out, preds = work / "bench", work / "prepared", work / "preds.csv"
    py = sys.executable
    rows = [measured([py, str(SCRIPT), "--make", str(bench), str(n)], n, "make")]
    rows.append(measured([py, str(SCRIPT), "--prepare", str(bench), str(out)], n, "prepare"))
    detect = [py, "-m", "hrr_core.cli", str(bench), "-c", str(checkpoint), "-o", str(preds), "--quiet"]
    rows.append(
        measured([*detect, "--device", "cpu", "--workers", str(workers), "--batch-size", str(batch_size)], n, "detect")
    )
    stats_path = out / "prepare_stats.json"
    stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
    problems = [f"{r.step} exited {r.returncode}" for r in rows if r.returncode] or check_outputs(bench, out, preds, n)
    return rows, stats, problems


def table(rows: list[Measured]) -> str:
    """Markdown table of the measurements."""
    lines = ["| N | step | seconds | peak RSS (MiB) | µs / image | load |", "|---:|---|---:|---:|---:|---:|"]
    lines += [
        f"| {r.n} | {r.step} | {r.seconds:.1f} | {r.peak_rss_mib:.0f} | {r.us_per_image:.0f} | {r.load_1min:.1f} |"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000], help="images per run")
    parser.add_argument("--workers", type=int, default=0, help="hrr-detect --workers (default 0)")
    parser.add_argument("--batch-size", type=int, default=64, help="hrr-detect --batch-size (default 64)")
    parser.add_argument("--out", type=Path, help="also write the rows and the environment as JSON")
    parser.add_argument("--work", type=Path, help="keep the files here (default: a temporary folder, removed)")
    parser.add_argument("--make", nargs=2, metavar=("ROOT", "N"), help=argparse.SUPPRESS)  # subprocess steps
    parser.add_argument("--prepare", nargs=2, metavar=("BENCH", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.make:
        root = Path(args.make[0])
        counts = make_benchmark(root, int(args.make[1]))
        (root / "counts.json").write_text(json.dumps(counts))
        return counts
    if args.prepare:
        return prepare(Path(args.prepare[0]), Path(args.prepare[1]))
    from predict_throughput import cpu_name, tiny_checkpoint

    tmp = None if args.work else tempfile.mkdtemp(prefix="hrr-scale-")
    work = args.work or Path(tmp)
    rows: list[Measured] = []
    runs = []
    try:
        checkpoint = tiny_checkpoint(work, width=8)
        for n in args.sizes:
            size_dir = work / f"n{n}"
            shutil.rmtree(size_dir, ignore_errors=True)
            size_rows, stats, problems = run_size(n, size_dir, checkpoint, args.workers, args.batch_size)
            rows += size_rows
            runs.append({"n": n, "prepare_stats": stats, "problems": problems})
            for r in size_rows:
                print(json.dumps(asdict(r)), flush=True)
            print(f"n={n}: prepare stats {json.dumps(stats)}; " + ("; ".join(problems) or "outputs checked"))
            if tmp:
                shutil.rmtree(size_dir, ignore_errors=True)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(table(rows))
    result = {
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "workers": args.workers,
        "batch_size": args.batch_size,
        "rows": [asdict(r) for r in rows],
        "runs": runs,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
