"""Pieces every backbone shares: input normalisation, stochastic depth, the early
instance-norm switch, input-conv extension for extra channels, and safe strict weight loading.

Input convention of the whole project: images in [0, 1], shape (B, 3, H, W), optionally followed
by extra channels (e.g. a reconstruction residual, giving (B, 6, H, W)). Each backbone
normalises internally with its own ImageNet statistics.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from hrr_core.paths import resolve

# ---------------------------------------------------------------------------------------------
# Small layers
# ---------------------------------------------------------------------------------------------


class InputNormalization(nn.Module):
    """``(x - mean) / std`` on the three image channels; extra channels are only scaled.

    Extra channels (index >= 3) are taken to be *differences* of [0, 1] images (residuals), so
    they get the image channels' scale ``1 / std`` (channel ``c`` uses ``std[c % 3]``) but no
    shift: a zero residual stays exactly zero after normalisation.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], in_channels: int = 3):
        super().__init__()
        if in_channels < 3:
            raise ValueError(f"in_channels must be >= 3 (RGB first, extra channels after), got {in_channels}")
        shift = torch.zeros(in_channels)
        shift[:3] = torch.tensor(mean, dtype=torch.float32)
        scale = torch.tensor([1.0 / std[c % 3] for c in range(in_channels)], dtype=torch.float32)
        self.in_channels = in_channels
        self.register_buffer("shift", shift.view(1, -1, 1, 1), persistent=False)  # (1, C, 1, 1)
        self.register_buffer("scale", scale.view(1, -1, 1, 1), persistent=False)  # (1, C, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected images of shape (B, {self.in_channels}, H, W) in [0, 1], got {tuple(x.shape)}; "
                f"set backbone.in_channels to the number of input channels"
            )
        return (x - self.shift) * self.scale


class DropPath(nn.Module):
    """Stochastic depth on a residual branch: zero the whole branch for a random subset of the
    batch during training and rescale the rest by ``1 / (1 - p)`` (identity at eval)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path rate must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty(x.shape[0], *([1] * (x.ndim - 1))).bernoulli_(keep)  # (B, 1, 1, 1)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def init_conv_bn(m: nn.Module) -> None:
    """The ResNet-style initialisation of one module: Kaiming-normal (fan-out) convolutions,
    BatchNorm weight 1 and bias 0; other modules are left alone."""
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def early_norm(enabled: bool, channels: int) -> nn.Module:
    """The ``instance_norm_early`` ablation switch: ``InstanceNorm2d(affine=False)`` on the stem's
    output maps (stage 1 in the EfficientNet and ResNet papers' tables), which strips each image's
    per-channel mean and variance (colour cast, brightness, contrast); identity when off.
    Parameter-free, so state dicts are the same either way."""
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False) if enabled else nn.Identity()


def global_pool(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, C) mean over space; any h, w >= 1."""
    return x.mean(dim=(2, 3))


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------


def extend_input_conv(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Extend a pretrained first-conv weight (O, 3, k, k) to (O, in_channels, k, k).

    The three RGB slices are kept unchanged; extra channel ``c`` gets the RGB filter of channel
    ``c % 3`` scaled by ``3 / in_channels`` (timm's ``adapt_input_conv`` repeat-and-scale).
    Property this guarantees (and the tests check): with the extra input channels all zero,
    the extended model gives exactly the 3-channel pretrained model's output (extra channels are
    not shifted by :class:`InputNormalization`), while non-zero extras (residuals) already excite
    the pretrained edge/texture filters at init.
    """
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected a first-conv weight of shape (O, 3, k, k), got {tuple(weight.shape)}")
    if in_channels < 3:
        raise ValueError(f"in_channels must be >= 3, got {in_channels}")
    if in_channels == 3:
        return weight
    extra = [weight[:, c % 3 : c % 3 + 1] for c in range(3, in_channels)]  # each (O, 1, k, k)
    extra_w = torch.cat(extra, dim=1) * (3.0 / in_channels)  # (O, C - 3, k, k)
    return torch.cat([weight, extra_w], dim=1)  # (O, C, k, k)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a ``.pth``/``.pt``/``.bin`` file (loaded with
    ``weights_only=True``: no pickled code runs). A ``{"state_dict": ...}`` or ``{"model": ...}``
    wrapper is unwrapped. Relative paths are taken from the project root."""
    p = resolve(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file {p} does not exist; check backbone.weights_path")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        obj = load_file(str(p), device="cpu")
    else:
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling refused or corrupt file
            raise ValueError(
                f"could not read {p} as a weights-only torch state dict ({type(exc).__name__}: {exc}); "
                "save it with torch.save(model.state_dict(), path) or as .safetensors"
            ) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{p} does not hold a mapping of parameter names to tensors; save model.state_dict()")
    return dict(obj)


def load_state_dict_checked(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    source: str,
    first_conv: str | None = None,
    drop_prefixes: Sequence[str] = (),
) -> None:
    """Load ``state_dict`` into ``model`` strictly, with an error naming every problem.

    first_conv: key of the input conv weight; a 3-channel weight is extended with
        :func:`extend_input_conv` when the model takes more channels.
    drop_prefixes: keys to discard from the file when the model has no such module (a
        classifier head the backbone does not use); only these are ever ignored.
    """
    sd = {k: v for k, v in state_dict.items() if not any(k.startswith(p) for p in drop_prefixes)}
    own = model.state_dict()
    if first_conv is not None and first_conv in sd and first_conv in own:
        if sd[first_conv].shape[1] == 3 and own[first_conv].shape[1] > 3:
            sd[first_conv] = extend_input_conv(sd[first_conv], own[first_conv].shape[1])
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [
        f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in sd and sd[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        for name, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", wrong)):
            if keys:
                more = f" ... and {len(keys) - 10} more" if len(keys) > 10 else ""
                parts.append(f"{len(keys)} {name}: {', '.join(keys[:10])}{more}")
        raise ValueError(
            f"weights from {source} do not match {type(model).__name__}: "
            + "; ".join(parts)
            + ". Check that the file is for this architecture (backbone.name) and in the expected key format."
        )
    model.load_state_dict(sd, strict=True)


def package_file(package: str, relative: str) -> Path:
    """Path of a data file shipped inside an installed package (e.g. pretrained weights)."""
    from importlib.resources import files

    try:
        path = Path(str(files(package).joinpath(relative)))
    except ModuleNotFoundError:
        raise FileNotFoundError(f"package {package!r} is not installed; pip install it (see pyproject.toml)") from None
    if not path.is_file():
        raise FileNotFoundError(f"{relative} not found inside package {package!r} at {path}; reinstall the package")
    return path
