"""Does HRR's retrospection carry information? A check on the cached MSR representation before
any detector trains on it (issue #17 item 3; docs/method.md §3).

Two measurements, on the train and validation splits only (a test row is refused):

- the mean absolute residual |x~_s - x^_s| per split, class and scale: if re-rendering through
  the frozen LDM changes fakes less than reals (the premise of retrospection: an image the model
  could have made is closer to its own re-rendering), fakes show the smaller residual;
- a linear probe on the residual alone: a standardised logistic regression on per-scale residual
  statistics (mean, standard deviation, share of the residual's spectral energy in the upper half
  of frequencies), fitted on train and scored on validation (AP overall and per generator, each
  generator's fakes against every validation real). An AP near 0.5 says the residual carries no
  class information a linear model can read, whatever the classifier on top does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

CHECK_SPLITS = ("train", "val")
STATS = ("mean", "std", "high_freq")


def residual_channels(rep: torch.Tensor, representation: str, channels: int = 3) -> torch.Tensor | None:
    """The residual part of one cached MSR tensor, (K, C, S, S) or tiled (T, K, C, S, S) ->
    (K, channels, S, S) (tiles averaged); None when the representation holds no residual
    (``recon``, or retrospection off: then the tensor is the image itself)."""
    if representation == "residual":
        res = rep
    elif representation == "residual+image":
        res = rep[..., -channels:, :, :]  # image first, residual after
    else:
        return None
    return res.float().mean(dim=0) if res.dim() == 5 else res.float()


def residual_features(res: torch.Tensor) -> np.ndarray:
    """(K, C, S, S) residual -> (3K,) statistics: per scale the mean and std of |r| and the share of
    the channel-mean residual's 2-D spectral energy above half the Nyquist radius."""
    k, _, s, _ = res.shape
    mono = res.abs().mean(dim=1)  # (K, S, S)
    power = torch.fft.fftshift(torch.fft.fft2(mono - mono.mean(dim=(-2, -1), keepdim=True)), dim=(-2, -1)).abs() ** 2
    yy, xx = torch.meshgrid(torch.arange(s) - s // 2, torch.arange(s) - s // 2, indexing="ij")
    high = (yy**2 + xx**2).float().sqrt() > s / 4  # outside half the Nyquist radius
    share = power[:, high].sum(-1) / power.flatten(1).sum(-1).clamp_min(1e-12)  # (K,)
    stats = torch.stack([res.abs().flatten(1).mean(-1), res.abs().flatten(1).std(-1), share], dim=1)  # (K, 3)
    return stats.flatten().numpy().astype(np.float64)


def retrospection_check(rows: pd.DataFrame, dataset, representation: str, scale_factors, seed: int = 0) -> dict:
    """The check over ``rows`` (manifest rows of the train and val splits, columns id, split, label,
    generator) read from ``dataset`` (a :class:`~hrr_core.data.cache.RetrospectionDataset` over the
    same rows, in order). Returns a JSON-ready dict (see the module docstring)."""
    bad = rows.loc[~rows["split"].isin(CHECK_SPLITS), "id"]
    if len(bad):
        raise ValueError(
            f"the retrospection check received {len(bad)} rows outside train/val (e.g. {list(bad[:3])}); "
            "it is a choice-time check and sees the train and val splits only"
        )
    feats = []
    for i in range(len(rows)):
        res = residual_channels(dataset[i]["inputs"], representation)
        if res is None:
            return {"skipped": f"msr.representation {representation!r} holds no residual"}
        feats.append(residual_features(res))
    x = np.stack(feats)  # (N, 3K)
    k = x.shape[1] // len(STATS)
    names = [f"x{f:g}_{stat}" for f in list(scale_factors)[:k] for stat in STATS]
    out: dict = {"n": {s: int((rows["split"] == s).sum()) for s in CHECK_SPLITS}, "features": names}
    mean_abs = {}
    for split in CHECK_SPLITS:
        part = {}
        for label, cls in ((0, "real"), (1, "fake")):
            pick = ((rows["split"] == split) & (rows["label"] == label)).to_numpy()
            if pick.any():
                part[cls] = [round(float(v), 5) for v in x[pick][:, 0 :: len(STATS)].mean(axis=0)]  # per scale
        mean_abs[split] = part
    out["mean_abs_residual"] = mean_abs  # per split and class, one value per scale
    train, val = (rows["split"] == "train").to_numpy(), (rows["split"] == "val").to_numpy()
    y = rows["label"].to_numpy().astype(int)
    if len(set(y[train])) < 2 or len(set(y[val])) < 2:
        out["probe"] = {"skipped": "train and val each need both classes"}
        return out
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, random_state=seed))
    probe.fit(x[train], y[train])
    p = probe.predict_proba(x[val])[:, 1]
    gens = rows["generator"].to_numpy()
    by_gen = {}
    for g in sorted(set(gens[val & (y == 1)])):
        pick = (gens[val] == g) | (y[val] == 0)
        by_gen[str(g)] = round(float(average_precision_score(y[val][pick], p[pick])), 4)
    ap = float(average_precision_score(y[val], p))
    out["probe"] = {
        "val_ap": round(ap, 4),
        "val_ap_by_generator": by_gen,
        "chance_ap": round(float(y[val].mean()), 4),
        "coefficients": {n: round(float(c), 4) for n, c in zip(names, probe[-1].coef_[0])},
    }
    return out
