"""FreqNet-style frequency-space input (Tan et al., "Frequency-Aware Deepfake Detection:
Improving Generalizability through Frequency Space Learning", AAAI 2024; code:
chuangchuangtan/FreqNet-DeepfakeDetection).

FreqNet makes a small CNN attend to high frequencies: it high-passes the image in the FFT domain
and learns convolutions on the spectrum's amplitude and phase (its "frequency convolutional
layers", inside the network at several depths; 1.85 M parameters in all).

Ours (a substitute): only the input side, on the shared truncated ResNet-50 of
:mod:`hrr_core.models.baselines.trunk`. Per RGB channel, F = FFT2(x) (orthonormal, so the scale
does not depend on the size), frequencies with max(|f_y|, |f_x|) < ``cutoff`` (cycles per pixel,
Nyquist = 0.5) zeroed, then up to three maps stacked (``parts``): ``spatial`` = real(iFFT2) (the
high-passed image), ``amplitude`` = log(1 + |F|) and ``phase`` = angle(F) / pi, both fft-shifted
so the convolution runs over frequency coordinates (zero where masked). The in-network
frequency layers of FreqNet are not reproduced; numbers are not the paper's.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hrr_core.models.baselines.trunk import TruncatedResNet
from hrr_core.schema.baselines import (
    FREQ_PARTS,  # noqa: E402,F401
    FreqNetConfig,  # noqa: F401 (config lives in the schema)
)


def high_pass_spectrum(x: torch.Tensor, cutoff: float) -> torch.Tensor:
    """(B, C, H, W) real -> (B, C, H, W) complex orthonormal FFT with |f_y|, |f_x| both < cutoff zeroed."""
    spec = torch.fft.fft2(x.float(), norm="ortho")  # (B, C, H, W) complex
    fy = torch.fft.fftfreq(x.shape[-2], device=x.device).abs().view(-1, 1)  # (H, 1) cycles / pixel
    fx = torch.fft.fftfreq(x.shape[-1], device=x.device).abs().view(1, -1)  # (1, W)
    keep = torch.maximum(fy, fx) >= cutoff  # (H, W)
    return spec * keep


class FrequencyInput(nn.Module):
    """Images (B, 3, H, W) in [0, 1] -> (B, 3 len(parts), H, W) high-pass spatial / amplitude / phase maps."""

    def __init__(self, cutoff: float = 0.125, parts: tuple[str, ...] = FREQ_PARTS):
        super().__init__()
        self.cutoff, self.parts = cutoff, tuple(parts)
        self.out_channels = 3 * len(self.parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = high_pass_spectrum(x, self.cutoff)  # (B, 3, H, W) complex
        maps = {}
        if "spatial" in self.parts:
            maps["spatial"] = torch.fft.ifft2(spec, norm="ortho").real
        shifted = torch.fft.fftshift(spec, dim=(-2, -1))  # (B, 3, H, W), zero frequency at the centre
        if "amplitude" in self.parts:
            maps["amplitude"] = torch.log1p(shifted.abs())
        if "phase" in self.parts:
            maps["phase"] = torch.where(shifted.abs() > 0, shifted.angle() / math.pi, torch.zeros_like(shifted.real))
        return torch.cat([maps[p] for p in self.parts], dim=1).to(x.dtype)  # (B, 3 K, H, W)


def build_freqnet(cfg: FreqNetConfig) -> TruncatedResNet:
    """The FreqNet-style detector: images (B, 3, H >= 32, W >= 32) in [0, 1] -> DetectorOutput."""
    return TruncatedResNet(cfg, FrequencyInput(cfg.cutoff, cfg.parts))
