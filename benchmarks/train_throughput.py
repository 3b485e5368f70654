"""Training throughput (images/s) and peak memory of a detector through the real training loop.

    python benchmarks/train_throughput.py                       # small_resnet, 64 and 128 px
    python benchmarks/train_throughput.py --model tiny_cnn --sizes 64 --steps 5
    python benchmarks/train_throughput.py --device cuda --batch-size 64 --json out.json

Random images in [0, 1] and random labels go through :func:`hrr_core.training.loop.fit` (so
loader, autocast, GradScaler, optimiser step and hooks are all timed), after a short warm-up run.
AMP is benchmarked off and on ('auto': bf16 or fp16) where CUDA exists, off only on CPU.
Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA; on CPU the process's peak RSS so far
(``resource.getrusage``), which never goes down, so runs go from small to large.

To add a model (e.g. HRR), add a builder ``image_size -> nn.Module`` to ``MODELS`` whose forward
takes (B, 3, H, W) and returns a ``DetectorOutput``.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hrr_core.models.outputs import DetectorOutput  # noqa: E402
from hrr_core.runtime import resolve_device  # noqa: E402
from hrr_core.training.loop import TrainConfig, fit  # noqa: E402


class TinyCNN(nn.Module):
    """Fallback detector: three strided convs, global pooling, a linear head."""

    def __init__(self, width: int = 32):
        super().__init__()
        layers, ch = [], 3
        for out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(ch, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            ch = out
        self.features, self.head = nn.Sequential(*layers), nn.Linear(ch, 1)

    def forward(self, x: torch.Tensor) -> DetectorOutput:
        pooled = self.features(x).mean(dim=(2, 3))  # (B, 4 * width)
        return DetectorOutput(logits=self.head(pooled).squeeze(1), features=pooled)


def _small_resnet(image_size: int) -> nn.Module:
    from hrr_core.models.backbones import BackboneConfig
    from hrr_core.models.classifier import BinaryClassifier, ClassifierConfig

    return BinaryClassifier(ClassifierConfig(backbone=BackboneConfig(name="small_resnet", pretrained=False)))


def _params_model(method: str):
    """The model of ``methods.<method>`` in params.yaml (default profile)."""
    from hrr_core import methods
    from hrr_core.schema import load_config

    cfg = load_config(Path(__file__).resolve().parents[1] / "params.yaml", "default")
    return methods.spec_of(cfg, method).build(cfg.model_config(method)), cfg.model_config(method)


def _hrr(image_size: int) -> nn.Module:
    return _params_model("hrr")[0]


def _hrr_input_shape(image_size: int) -> tuple[int, ...]:
    """HRR trains on cached MSR representations: (K, C', S, S) per image."""
    from hrr_core.models.msr import representation_channels

    msr = _params_model("hrr")[1].msr.resolved()
    return (msr.num_scales, representation_channels(msr), msr.input_size, msr.input_size)


MODELS: dict[str, Callable[[int], nn.Module]] = {
    "small_resnet": _small_resnet,  # BinaryClassifier on SmallResNet(width 24, depth 1), ~0.7 M parameters
    "tiny_cnn": lambda image_size: TinyCNN(),
    "cnn": lambda image_size: _params_model("cnn")[0],  # methods.cnn: EfficientNet-Lite0 classifier
    "hrr": _hrr,  # methods.hrr on its cached representations (the size argument is ignored: MSR fixes S)
}
INPUT_SHAPES: dict[str, Callable[[int], tuple[int, ...]]] = {"hrr": _hrr_input_shape}


class RandomImages(torch.utils.data.Dataset):
    """``length`` samples cycling through a fixed pool of random images (no per-item RNG cost)."""

    def __init__(self, length: int, shape: tuple[int, ...], pool: int = 64):
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(pool, *shape, generator=g)
        self.y = torch.randint(0, 2, (pool,), generator=g).float()
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        j = i % len(self.x)
        return {"inputs": self.x[j], "labels": self.y[j], "ids": f"r{i}"}


def _objective(output: DetectorOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"loss": nn.functional.binary_cross_entropy_with_logits(output.logits.float(), labels)}


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(model_name: str, image_size: int, amp: str, args: argparse.Namespace) -> dict:
    """Images/s of ``args.steps`` optimiser steps after a ``args.warmup``-step run."""
    device = resolve_device(args.device)
    cfg = TrainConfig(
        epochs=1,
        batch_size=args.batch_size,
        lr=1e-3,
        amp=amp,
        device=args.device,
        channels_last=args.channels_last,
        compile=args.compile,
        num_workers=args.num_workers,
        log_every_steps=10**9,
    )
    seconds = 0.0
    for steps in (args.warmup, args.steps):
        model = MODELS[model_name](image_size)
        shape = INPUT_SHAPES.get(model_name, lambda size: (3, size, size))(image_size)
        data = RandomImages(steps * args.batch_size, shape)
        loader = torch.utils.data.DataLoader(
            data, batch_size=args.batch_size, shuffle=True, num_workers=args.num_workers
        )
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        with tempfile.TemporaryDirectory() as out:
            result = fit(model, _objective, loader, None, cfg, out, resume=False)
        seconds = result.history[-1]["seconds"]  # the training epoch only, without the checkpoint
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "model": model_name,
        "params_m": round(n_params / 1e6, 3),
        "size": image_size,
        "amp": amp,
        "device": str(device),
        "batch": args.batch_size,
        "steps": args.steps,
        "images_per_s": round(args.steps * args.batch_size / seconds, 1),
        "peak_mem_mb": round(_peak_memory_mb(device), 1),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="small_resnet")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--verbose", action="store_true", help="show the training loop's log lines")
    args = parser.parse_args(argv)
    logging.getLogger("hrr_core.training").setLevel(logging.INFO if args.verbose else logging.WARNING)
    amps = ["off", "auto"] if resolve_device(args.device).type == "cuda" else ["off"]
    rows = []
    print(f"{'model':>14} {'size':>5} {'amp':>5} {'device':>7} {'batch':>5} {'img/s':>9} {'peak MB':>9}")
    for size in sorted(args.sizes):
        for amp in amps:
            row = measure(args.model, size, amp, args)
            rows.append(row)
            print(
                f"{row['model']:>14} {size:>5} {amp:>5} {row['device']:>7} {row['batch']:>5} "
                f"{row['images_per_s']:>9.1f} {row['peak_mem_mb']:>9.1f}",
                flush=True,
            )
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
