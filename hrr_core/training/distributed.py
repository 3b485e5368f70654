"""One code path for one CPU process, one GPU, or many processes under ``accelerate launch``.

HF Accelerate sets up the process group (gloo on CPU, NCCL on GPUs), wraps the model in DDP and
shards the loaders; a plain ``python`` run is simply world size 1. The loop does its own autocast,
GradScaler and accumulation (so Accelerate always runs with ``mixed_precision="no"``; the
precision is resolved here by :func:`resolve_amp`), and only rank 0 writes files.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs, PartialState
from accelerate.state import AcceleratorState

from hrr_core.runtime import resolve_device


def make_accelerator(device: str, seed: int, find_unused_parameters: bool = False) -> Accelerator:
    """An :class:`Accelerator` for ``device`` ('auto' | 'cpu' | 'cuda'). ``find_unused_parameters``
    is passed to DDP (needed when some parameters get no gradient in a step; slower).

    Loaders it prepares use a seedable sampler: the shuffle order of epoch ``e`` depends only on
    ``seed + e``, on every rank, so a resumed run sees the same batches as an uninterrupted one.
    """
    wanted = resolve_device(device)
    _reset_if_single_process_mismatch(wanted)
    accelerator = Accelerator(
        cpu=wanted.type == "cpu",
        mixed_precision="no",
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=seed),
        # A reproducible shuffle comes from the seeded sampler above; Accelerate must not
        # re-seed the global RNG from rank 0 before each epoch.
        rng_types=[],
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
    )
    if wanted.type == "cuda" and accelerator.device.type != "cuda":
        raise ValueError(f"device {device!r} asked for, but Accelerate resolved {accelerator.device}")
    return accelerator


def _reset_if_single_process_mismatch(wanted: torch.device) -> None:
    """Accelerate keeps one process-wide state; in a single process (tests, notebooks) a later
    run on another device type would otherwise fail or silently keep the old device."""
    shared = PartialState._shared_state
    if not shared or shared.get("num_processes", 1) != 1:
        return
    current = shared.get("device")
    if current is not None and torch.device(current).type != wanted.type:
        AcceleratorState._reset_state(reset_partial_state=True)


@dataclass(frozen=True)
class AmpSetup:
    """Autocast dtype (None = full precision) and whether fp16 needs a GradScaler."""

    dtype: torch.dtype | None
    use_scaler: bool

    def autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=self.dtype) if self.dtype is not None else nullcontext()


def resolve_amp(amp: str, device: torch.device) -> AmpSetup:
    """'auto': bf16 on CUDA if supported, else fp16 with a GradScaler; off on CPU."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return AmpSetup(None, False)
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if amp == "fp16" and device.type != "cuda":
        raise ValueError(f"train.amp='fp16' needs CUDA, but the device is {device}; use 'bf16', 'off' or 'auto'")
    return AmpSetup(torch.bfloat16, False) if amp == "bf16" else AmpSetup(torch.float16, True)


def reduce_mean_terms(accelerator: Accelerator, sums: dict[str, torch.Tensor], count: torch.Tensor) -> dict[str, float]:
    """Per-sample means of ``sums`` (each a sum over this rank's samples) over all ranks."""
    if not sums:
        return {}
    keys = sorted(sums)
    packed = torch.stack([sums[k].float() for k in keys] + [count.float()])  # (T + 1,)
    packed = accelerator.reduce(packed, reduction="sum")
    total = max(float(packed[-1]), 1.0)
    return {k: float(packed[i]) / total for i, k in enumerate(keys)}
