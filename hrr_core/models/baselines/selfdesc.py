"""A real-only, zero-shot detector in the manner of Forensic Self-Descriptions (Nguyen et al.,
"Forensic Self-Descriptions Are All You Need for Zero-Shot Detection, Open-Set Source Attribution,
and Clustering of AI-generated Images", CVPR 2025).

Camera images share low-level statistics (sensor noise, demosaicing, JPEG) that generators do
not reproduce exactly. Fitted on REAL images only, so no generator is ever needed:

1. Scene-agnostic predictive filters [P]: at each scale s of an average-pooled pyramid, one
   linear filter w_s predicts every pixel from its (2r+1)^2 - 1 neighbours (centre excluded),
   fitted by ridge least squares on real pixels; the residual r_s = x_s - w_s * x_s keeps what
   the scene does not explain.
2. A self-description per image [P]: at each scale, the ridge least-squares coefficients that
   predict r_s from its own 8 neighbours (how the residual is correlated in that image) and
   log mean r_s^2 (its energy): 9 numbers per scale.
3. A density of reals [P]: a Gaussian mixture (scikit-learn) over the standardised
   self-descriptions of real images; anomaly a(x) = -log p(description(x)).
4. Calibration [ours]: on reals held out from steps 1-3 (``calibration_fraction``), or on
   validation reals through :meth:`SelfDescription.calibrate`, probability
   p = sigmoid(logit(q) (a - a_q) / (a_q - a_50)) with a_50 / a_q the median / q-quantile of
   their anomalies: a median real scores 1 - q, the q-quantile 0.5 (so ACC at 0.5 rejects about
   1 - q of reals), and the ranking is that of the anomaly.

Differs from the paper: its filters are learned by a small masked CNN and its self-description
is a per-image fitted network; ours are closed-form linear predictors (cheap, deterministic, CPU).
Per channel with filters shared over channels. Any size >= 32 px.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hrr_core.models.baselines.common import check_images, load_arrays, load_config, save_arrays, save_config, sigmoid
from hrr_core.schema.baselines import SelfDescConfig  # noqa: F401 (config lives in the schema)

ARRAYS_FILE = "selfdesc.safetensors"


def _neighbourhoods(x: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, H, W) -> neighbours (C h w, K) and centres (C h w,) over the valid positions
    (h = H - 2r, w = W - 2r), K = (2r + 1)^2 - 1 (centre excluded)."""
    k = 2 * radius + 1
    cols = F.unfold(x.unsqueeze(1), k)  # (C, k^2, h w)
    cols = cols.permute(0, 2, 1).reshape(-1, k * k)  # (C h w, k^2)
    centre = k * k // 2
    return torch.cat([cols[:, :centre], cols[:, centre + 1 :]], dim=1), cols[:, centre]


def _ridge_solve(a: torch.Tensor, b: torch.Tensor, ridge: float) -> torch.Tensor:
    """argmin_w |a w - b|^2 + ridge tr(a^T a) / K |w|^2, float64; a (N, K), b (N,) -> (K,)."""
    a, b = a.double(), b.double()
    gram = a.T @ a  # (K, K)
    lam = ridge * float(torch.trace(gram)) / gram.shape[0] + 1e-12
    return torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), a.T @ b)


def _pyramid(x: torch.Tensor, scales: int) -> list[torch.Tensor]:
    """(C, H, W) -> [x, pool2(x), pool4(x), ...] (``scales`` levels)."""
    levels = [x]
    for _ in range(scales - 1):
        levels.append(F.avg_pool2d(levels[-1].unsqueeze(0), 2).squeeze(0))  # (C, H / 2^s, W / 2^s)
    return levels


def _as_list(images) -> list[torch.Tensor]:
    if isinstance(images, torch.Tensor):
        check_images(images)
        return list(images)
    out = list(images)
    for x in out:
        check_images(x.unsqueeze(0) if isinstance(x, torch.Tensor) else x)
    return out


def _real_mask(labels, n: int) -> np.ndarray:
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels, dtype=np.float64).reshape(-1)
    if y.shape != (n,) or not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(
            f"expected {n} labels in {{0 (real), 1 (generated)}}, got shape {y.shape}, values {np.unique(y)}"
        )
    return y == 0


class SelfDescription:
    """Real-only scorer: ``fit(images, labels)`` (uses the label-0 images only),
    ``calibrate(images, labels)`` (label-0 only), ``anomaly(images)``, ``score(images) ->
    probabilities``, ``save`` / ``load`` (config.json + safetensors)."""

    def __init__(self, cfg: SelfDescConfig):
        self.cfg = cfg
        self.filters: list[torch.Tensor] = []  # per scale (K,) float64
        self.arrays: dict[str, np.ndarray] = {}  # desc_mean, desc_scale, gmm_*, calibration
        self.n_fit = self.n_calibration = 0

    # -- self-descriptions ----------------------------------------------------------------------

    def describe(self, image: torch.Tensor) -> np.ndarray:
        """(3, H, W) in [0, 1] -> (9 scales,) self-description (needs fitted filters)."""
        out = []
        for level, w in zip(_pyramid(image.double(), self.cfg.scales), self.filters):
            nb, centre = _neighbourhoods(level, self.cfg.radius)
            h, wd = level.shape[-2] - 2 * self.cfg.radius, level.shape[-1] - 2 * self.cfg.radius
            resid = (centre - nb @ w).view(level.shape[0], h, wd)  # (C, h, w) stage-1 residual
            nb2, c2 = _neighbourhoods(resid, 1)
            coef = _ridge_solve(nb2, c2, self.cfg.ridge)  # (8,)
            energy = torch.log(resid.pow(2).mean() + 1e-12)
            out.append(torch.cat([coef, energy.view(1)]))
        return torch.cat(out).numpy()

    def descriptions(self, images) -> np.ndarray:
        """Images ((N, 3, H, W) or a list of (3, H, W), any sizes >= 32) -> (N, 9 scales)."""
        if not self.filters:
            raise ValueError("SelfDescription has no filters yet: call fit(images, labels) with real images first")
        return np.stack([self.describe(x) for x in _as_list(images)])

    # -- fitting ----------------------------------------------------------------------------------

    def _fit_filters(self, reals: list[torch.Tensor], rng: np.random.Generator) -> None:
        self.filters = []
        for s in range(self.cfg.scales):
            rows, targets = [], []
            for x in reals:
                nb, centre = _neighbourhoods(_pyramid(x.double(), s + 1)[s], self.cfg.radius)
                take = rng.choice(nb.shape[0], min(nb.shape[0], self.cfg.pixels_per_image), replace=False)
                rows.append(nb[take])
                targets.append(centre[take])
            self.filters.append(_ridge_solve(torch.cat(rows), torch.cat(targets), self.cfg.ridge))

    def _fit_density(self, desc: np.ndarray) -> None:
        from sklearn.mixture import GaussianMixture

        mean, scale = desc.mean(0), desc.std(0) + 1e-8
        gmm = GaussianMixture(
            self.cfg.n_components,
            covariance_type=self.cfg.covariance,
            reg_covar=self.cfg.reg_covar,
            random_state=self.cfg.seed,
        ).fit((desc - mean) / scale)
        prec = gmm.precisions_cholesky_
        if self.cfg.covariance == "diag":
            prec = np.stack([np.diag(p) for p in prec])  # (k, d, d)
        self.arrays = {
            "desc_mean": mean,
            "desc_scale": scale,
            "gmm_weights": gmm.weights_,
            "gmm_means": gmm.means_,
            "gmm_prec_chol": prec,
        }

    def fit(self, images, labels) -> "SelfDescription":
        """Fit filters, density and calibration on the REAL images (label 0) only; generated
        images are ignored. A seeded ``calibration_fraction`` of the reals is held out to calibrate."""
        images = _as_list(images)
        idx = np.flatnonzero(_real_mask(labels, len(images)))
        n_cal = int(round(self.cfg.calibration_fraction * len(idx)))
        need = max(2, self.cfg.n_components) + 1
        if len(idx) < need or n_cal < 1 or len(idx) - n_cal < need - 1:
            raise ValueError(
                f"SelfDescription.fit needs real images (label 0): got {len(idx)}, needs at least {need} "
                f"so that {self.cfg.calibration_fraction:.0%} can be held out to calibrate and "
                f"n_components={self.cfg.n_components} fit on the rest; "
                "add real photos to the training set"
            )
        rng = np.random.default_rng(self.cfg.seed)
        perm = rng.permutation(idx)
        cal, fit = [images[i] for i in perm[:n_cal]], [images[i] for i in perm[n_cal:]]
        self._fit_filters(fit, rng)
        self._fit_density(self.descriptions(fit))
        self.n_fit = len(fit)
        return self.calibrate(cal, np.zeros(len(cal)))

    def calibrate(self, images, labels) -> "SelfDescription":
        """Re-anchor the probabilities on the real images (label 0) given, e.g. the validation
        reals; generated images are ignored. Needs at least one real."""
        images = _as_list(images)
        reals = [x for x, r in zip(images, _real_mask(labels, len(images))) if r]
        if not reals:
            raise ValueError("SelfDescription.calibrate needs real images (label 0), got none")
        a = self.anomaly(reals)
        a50, aq = float(np.median(a)), float(np.quantile(a, self.cfg.real_quantile))
        spread = max(aq - a50, 1e-6 * (1.0 + abs(a50)))
        self.arrays["calibration"] = np.array([aq, spread])
        self.n_calibration = len(reals)
        return self

    # -- scoring ---------------------------------------------------------------------------------

    def anomaly(self, images) -> np.ndarray:
        """(N,) float64 -log-density of the self-descriptions under the reals' mixture."""
        if "gmm_means" not in self.arrays:
            raise ValueError("SelfDescription is not fitted: call fit(images, labels) with real images first")
        z = (self.descriptions(images) - self.arrays["desc_mean"]) / self.arrays["desc_scale"]  # (N, d)
        means, prec = self.arrays["gmm_means"], self.arrays["gmm_prec_chol"]  # (k, d), (k, d, d)
        y = np.einsum("nd,kde->nke", z, prec) - np.einsum("kd,kde->ke", means, prec)[None]  # (N, k, d)
        log_det = np.log(np.abs(np.diagonal(prec, axis1=1, axis2=2))).sum(1)  # (k,)
        log_n = -0.5 * (z.shape[1] * math.log(2 * math.pi) + (y**2).sum(2)) + log_det  # (N, k)
        joint = log_n + np.log(self.arrays["gmm_weights"])[None]  # (N, k)
        top = joint.max(1, keepdims=True)
        return -(top[:, 0] + np.log(np.exp(joint - top).sum(1)))

    def score(self, images) -> np.ndarray:
        """(N,) probability of being generated (see the module docstring for the calibration)."""
        if "calibration" not in self.arrays:
            raise ValueError("SelfDescription is not fitted: call fit(images, labels) with real images first")
        aq, spread = self.arrays["calibration"]
        q = self.cfg.real_quantile
        return sigmoid(math.log(q / (1 - q)) * (self.anomaly(images) - aq) / spread)

    # -- persistence ------------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike) -> Path:
        if "calibration" not in self.arrays:
            raise ValueError("SelfDescription is not fitted; call fit before save")
        d = save_config(directory, self.cfg, {"n_fit": self.n_fit, "n_calibration": self.n_calibration})
        filters = {f"filter_{s}": w.numpy() for s, w in enumerate(self.filters)}
        save_arrays(d / ARRAYS_FILE, {**self.arrays, **filters})
        return d

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "SelfDescription":
        cfg, extra = load_config(directory, SelfDescConfig)
        arrays = load_arrays(Path(directory) / ARRAYS_FILE)
        model = cls(cfg)
        model.filters = [torch.from_numpy(arrays.pop(f"filter_{s}")) for s in range(cfg.scales)]
        model.arrays = arrays
        model.n_fit, model.n_calibration = int(extra.get("n_fit", 0)), int(extra.get("n_calibration", 0))
        return model
