"""Train one method from the command line, on one device or many.

    python -m hrr_core.train hrr                       # as the train@hrr stage does
    python -m hrr_core.train hrr --resume              # continue from models/hrr/last
    accelerate launch --multi_gpu --num_processes 4 -m hrr_core.train hrr
    torchrun --standalone --nproc_per_node 4 -m hrr_core.train hrr

Every process runs the same code; Accelerate shards the batches, and only rank 0 writes
checkpoints, history and metrics.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hrr_core.train", description="Train one method of params.yaml.")
    parser.add_argument("method", help="a key of methods: in params.yaml")
    parser.add_argument("--params", default="params.yaml", help="path to params.yaml (default: the project's)")
    parser.add_argument("--profile", choices=("smoke", "default", "full"), help="override the profile in params.yaml")
    parser.add_argument("--resume", action="store_true", help="continue from models/<method>/last")
    args = parser.parse_args(argv)

    from hrr_core.config import load_config
    from hrr_core.stages import run_train

    cfg = load_config(args.params, args.profile)
    if args.method not in cfg.methods:
        parser.error(f"unknown method {args.method!r}; params.yaml has {', '.join(cfg.methods)}")
    out = run_train(cfg, args.method, resume=args.resume)
    if out["metrics"]:
        print(out["metrics"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
