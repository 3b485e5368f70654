"""The HRR detector: the trainable half of Hierarchical Retrospection Refinement.

Input is the cached MSR representation r (B, K, C', S, S) written by the retrospection stage
(:func:`hrr_core.models.msr.retrospect`); output is a :class:`DetectorOutput`.

    h_s = phi(r_s)                      shared backbone over the K scales          [G]
    z_s = W h_s                         auxiliary 2-way head per scale (shared W)  [S]+[G]
    h = mean_s h_s  (or concat_s h_s)   fusion                                     [G]
    f = AFR(h)  (or a linear head)      additive feature refinement                [P]+[R]+[G]

The losses (AFR loss, cross-scale KL of the z_s, auxiliary CE) are computed by
:class:`hrr_core.losses.objective.HRRObjective`; the group sparsity acts through
:meth:`HRRDetector.post_optimizer_step`, which the training loop calls after every optimiser step.

HRR v2 (issue #17) [G]: under ``msr.anchor: native`` the input is (B, T, K, C', S, S), T tiles
per image; every tile is scored and the scores f (and the per-scale logits and fused features)
are averaged over the tiles. ``afr.lr_scale`` gives the head its own optimiser parameter group
(:meth:`HRRDetector.optimizer_groups`); data-dependent AFR parts are set before training by
:meth:`HRRDetector.prepare_from_data`, which the training loop calls once on a fresh run.
"""

from __future__ import annotations

import torch
from torch import nn

from hrr_core.models.afr import AdditiveFeatureRefinement
from hrr_core.models.backbones import build_backbone
from hrr_core.models.outputs import DetectorOutput
from hrr_core.schema.models import HRRConfig  # noqa: F401 (config lives in the schema)


class LinearHead(nn.Module):
    """The "AFR off" ablation: f = w^T BatchNorm(h) + b on the same normalised u as AFR."""

    def __init__(self, dim: int, bn_momentum: float = 0.1):
        super().__init__()
        self.norm = nn.BatchNorm1d(dim, affine=False, momentum=bn_momentum)
        self.linear = nn.Linear(dim, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(h)).squeeze(-1)  # (B,)


class HRRDetector(nn.Module):
    """Shared backbone over scales -> per-scale heads + fusion -> AFR (or linear) score.

    ``backbone``: an already built module with ``.out_dim`` (tests inject tiny ones); built
    from ``cfg.backbone`` when None.
    """

    def __init__(self, cfg: HRRConfig, backbone: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone) if backbone is None else backbone
        feat_dim = int(self.backbone.out_dim)
        self.aux_head = nn.Linear(feat_dim, 2)  # W, shared by all scales
        fused_dim = feat_dim * cfg.num_scales if cfg.fusion == "concat" else feat_dim
        if cfg.afr.enabled:
            self.head: nn.Module = AdditiveFeatureRefinement(fused_dim, cfg.afr)
        else:
            self.head = LinearHead(fused_dim, cfg.afr.bn_momentum)

    @property
    def afr(self) -> AdditiveFeatureRefinement | None:
        """The AFR head, or None when ``afr.enabled`` is false."""
        return self.head if isinstance(self.head, AdditiveFeatureRefinement) else None

    @property
    def tiled(self) -> bool:
        """Whether inputs carry a tile axis, (B, T, K, C', S, S) (``msr.anchor: native``)."""
        return self.cfg.msr.resolved().anchor == "native"

    def _check_input(self, r: torch.Tensor) -> torch.Tensor:
        k, c = self.cfg.num_scales, self.cfg.backbone.in_channels
        if self.tiled:
            if r.ndim != 6 or r.shape[2] != k or r.shape[3] != c:
                raise ValueError(
                    f"HRRDetector (msr.anchor: native) expects tiled MSR representations (B, T, {k}, {c}, S, S), "
                    f"got {tuple(r.shape)}; check that the cache was built with the same msr config"
                )
            return r
        if r.ndim == 4 and k == 1:
            r = r.unsqueeze(1)  # (B, 1, C', S, S)
        if r.ndim != 5 or r.shape[1] != k or r.shape[2] != c:
            raise ValueError(
                f"HRRDetector expects the MSR representation (B, {k}, {c}, S, S), got "
                f"{tuple(r.shape)}; check that the cache was built with the same msr config"
            )
        return r

    def _fused(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """r (N, K, C', S, S) -> (per-scale features (N, K, D), fused features (N, D'))."""
        n, k = r.shape[:2]
        feats = self.backbone(r.flatten(0, 1))  # (N*K, D)
        feats = feats.view(n, k, -1)  # (N, K, D)
        fused = feats.mean(dim=1) if self.cfg.fusion == "mean" else feats.flatten(1)  # (N, D) or (N, K*D)
        return feats, fused

    def forward(self, r: torch.Tensor) -> DetectorOutput:
        """r (B, K, C', S, S) -> DetectorOutput(logits (B,), scale_logits (B, K, 2), features (B, D')).

        Tiled (``msr.anchor: native``): r (B, T, K, C', S, S); each of the B*T tiles is scored and
        logits, scale logits and features are the means over each image's T tiles [G]."""
        r = self._check_input(r)
        if r.ndim == 6:
            b, t = r.shape[:2]
            feats, fused = self._fused(r.flatten(0, 1))  # (B*T, K, D), (B*T, D')
            logits = self.head(fused).view(b, t).mean(dim=1)  # (B,) mean tile score
            scale_logits = self.aux_head(feats).view(b, t, *feats.shape[1:2], 2).mean(dim=1)  # (B, K, 2)
            fused = fused.view(b, t, -1).mean(dim=1)  # (B, D')
            return DetectorOutput(logits=logits, scale_logits=scale_logits, features=fused, extras=self._extras(fused))
        feats, fused = self._fused(r)
        scale_logits = self.aux_head(feats)  # (B, K, 2)
        logits = self.head(fused)  # (B,)
        return DetectorOutput(logits=logits, scale_logits=scale_logits, features=fused, extras=self._extras(fused))

    # ---------------------------------------------------------------- HRR v2: optimiser groups, data pass, report

    def optimizer_groups(self) -> list[dict] | None:
        """[G] The head's own parameter group with lr = train.lr * ``afr.lr_scale`` (marked
        ``proximal``: its lr is the proximal step's), the rest in a first group; None (one group
        for everything, v1) while lr_scale is 1."""
        scale = self.cfg.afr.lr_scale
        if scale == 1.0:
            return None
        head = {id(p) for p in self.head.parameters()}
        rest = [p for p in self.parameters() if id(p) not in head]
        return [{"params": rest}, {"params": list(self.head.parameters()), "lr_scale": scale, "proximal": True}]

    @property
    def needs_data_pass(self) -> bool:
        """Whether :meth:`prepare_from_data` has work to do (data-dependent AFR options)."""
        return self.afr is not None and self.cfg.afr.needs_data

    @torch.no_grad()
    def prepare_from_data(self, batches) -> dict[str, float]:
        """Fused features of at most ``afr.anchor_batches`` training batches ((inputs, labels)
        pairs), computed in eval mode, set AFR's data-dependent anchors / weights
        (:meth:`AdditiveFeatureRefinement.fit_from_data`). No-op unless :attr:`needs_data_pass`."""
        if not self.needs_data_pass:
            return {}
        was_training = self.training
        self.eval()
        feats, labels = [], []
        try:
            for i, (inputs, y) in enumerate(batches):
                if i >= self.cfg.afr.anchor_batches:
                    break
                r = self._check_input(inputs)
                fused = self._fused(r.flatten(0, 1))[1] if r.ndim == 6 else self._fused(r)[1]
                t = r.shape[1] if r.ndim == 6 else 1
                feats.append(fused.float())
                labels.append(y.float().repeat_interleave(t))  # one label per tile
        finally:
            self.train(was_training)
        if not feats:
            raise ValueError("AFR's data pass got no training batches")
        return self.afr.fit_from_data(torch.cat(feats), torch.cat(labels))

    def afr_report(self) -> dict:
        """Which AFR groups survived: ``kept_dims`` (indices of the fused features) and, with
        ``fusion: concat``, ``kept_per_scale`` (how many of each scale's D dims are kept)."""
        afr = self.afr
        if afr is None:
            return {}
        kept = afr.kept_groups()
        out = {"active_dims": len(kept), "dims": int(afr.group_norms().numel()), "kept_dims": kept}
        if self.cfg.fusion == "concat":
            d = int(self.backbone.out_dim)
            out["kept_per_scale"] = [sum(1 for j in kept if j // d == s) for s in range(self.cfg.num_scales)]
        return out

    def _extras(self, fused: torch.Tensor) -> dict[str, torch.Tensor | float]:
        afr = self.afr
        if afr is None:
            return {"active_dims": float(fused.shape[1])}
        with torch.no_grad():
            return {"active_dims": float(afr.active_dims()), "omega": afr.omega()}

    def train_metrics(self) -> dict[str, float]:
        """Logged by the training loop once per epoch: surviving AFR groups and Omega."""
        afr = self.afr
        if afr is None:
            return {}
        with torch.no_grad():
            return {"active_dims": float(afr.active_dims()), "omega": float(afr.omega())}

    @torch.no_grad()
    def post_optimizer_step(self, lr: float) -> None:
        """Proximal group soft-threshold with threshold lr * lambda_Omega * tau_j [R]+[G].

        Call after every optimiser step with the learning rate of the head's parameter group.
        No-op when AFR is off or lambda_Omega is 0.
        """
        if lr < 0:
            raise ValueError(f"post_optimizer_step needs the current learning rate >= 0, got {lr}")
        afr, lam = self.afr, self.cfg.objective.lambda_omega
        if afr is not None and lam > 0:
            afr.proximal_step(lr * lam)
