"""One code path for one CPU process, one GPU, or many processes under ``accelerate launch``.

HF Accelerate sets up the process group (gloo on CPU, NCCL on GPUs), wraps the model in DDP,
shards the loaders, and owns mixed precision (autocast, and the GradScaler for fp16) and
gradient accumulation; a plain ``python`` run is simply world size 1. The precision is resolved
here by :func:`resolve_mixed_precision`, and only rank 0 writes files.

Accelerate keeps one state per process, fixed by the first :class:`Accelerator`: a later run in
the same process must use the same device type and precision (:func:`make_accelerator` says so
clearly rather than letting Accelerate fail or silently keep the old device).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.state import AcceleratorState, is_initialized

from hrr_core.runtime import resolve_device

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_mixed_precision(amp: str, device: torch.device) -> str:
    """Accelerate's ``mixed_precision`` for ``train.amp`` on ``device``: 'no', 'bf16' or 'fp16'.

    'auto': bf16 on CUDA if supported, else fp16 (with a GradScaler); 'no' on CPU. 'bf16' is
    allowed on CPU (slow, but it runs); 'fp16' needs CUDA.
    """
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return "no"
    if amp == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if amp == "fp16" and device.type != "cuda":
        raise ValueError(f"train.amp='fp16' needs CUDA, but the device is {device}; use 'bf16', 'off' or 'auto'")
    return amp


def autocast(mixed_precision: str, device: torch.device) -> AbstractContextManager:
    """Autocast for inference outside an :class:`Accelerator` (``predict_loader``); training and
    validation inside ``fit`` use ``accelerator.autocast()`` instead."""
    if mixed_precision == "no":
        return nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[mixed_precision])


def _check_process_state(wanted: torch.device, mixed_precision: str) -> None:
    """Refuse, with the fix, a run whose device type or precision differs from the process-wide
    Accelerate state an earlier run in this process set up."""
    if not is_initialized():
        return
    state = AcceleratorState()
    if state.device.type != wanted.type or state.mixed_precision != mixed_precision:
        raise ValueError(
            f"this Python process already trained on {state.device.type} "
            f"with mixed_precision={state.mixed_precision!r}, "
            f"and Accelerate cannot switch to {wanted.type} with {mixed_precision!r} in the same process; "
            "run this training in a fresh process (restart the kernel, or run the stage on its own), "
            "or use the same train.device and train.amp as the earlier run"
        )


def make_accelerator(
    device: str, seed: int, *, amp: str = "off", grad_accum: int = 1, find_unused_parameters: bool = False
) -> Accelerator:
    """An :class:`Accelerator` for ``device`` ('auto' | 'cpu' | 'cuda'), with the mixed precision
    of ``amp`` (as ``train.amp``, see :func:`resolve_mixed_precision`) and ``grad_accum``
    micro-batches per optimiser step. ``find_unused_parameters`` is passed to DDP (needed when
    some parameters get no gradient in a step; slower).

    Loaders it prepares use a seedable sampler: the shuffle order of epoch ``e`` depends only on
    ``seed + e``, on every rank, so a resumed run sees the same batches as an uninterrupted one.
    """
    wanted = resolve_device(device)
    mixed_precision = resolve_mixed_precision(amp, wanted)
    _check_process_state(wanted, mixed_precision)
    accelerator = Accelerator(
        cpu=wanted.type == "cpu",
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=grad_accum,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=seed),
        # A reproducible shuffle comes from the seeded sampler above; Accelerate must not
        # re-seed the global RNG from rank 0 before each epoch.
        rng_types=[],
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)],
    )
    if accelerator.device.type != wanted.type:
        raise ValueError(
            f"device {device!r} asked for, but Accelerate resolved {accelerator.device} (set up earlier "
            "in this process); run this training in a fresh process"
        )
    return accelerator


def reduce_mean_terms(accelerator: Accelerator, sums: dict[str, torch.Tensor], count: torch.Tensor) -> dict[str, float]:
    """Per-sample means of ``sums`` (each a sum over this rank's samples) over all ranks."""
    if not sums:
        return {}
    keys = sorted(sums)
    packed = torch.stack([sums[k].float() for k in keys] + [count.float()])  # (T + 1,)
    packed = accelerator.reduce(packed, reduction="sum")
    total = max(float(packed[-1]), 1.0)
    return {k: float(packed[i]) / total for i, k in enumerate(keys)}
