"""The explorer notebook's views: figures of HRR's per-scale retrospection and of the AFR
dimensions that survived, and filterable views (dropdowns when ipywidgets runs, a static render
with the default choices otherwise). Tables come from :mod:`hrr_core.explore`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from hrr_core.explore import ANY, compare_commits, confident_mistakes, filter_rows, options

METRIC_COLUMNS = [
    "method", "train", "test", "held_out", "photos", "size", "condition", "level", "seed", "n",
    "acc", "real_acc", "fake_acc", "tpr_at_fpr", "ap", "auc", "ece",
]  # fmt: skip


# ---------------------------------------------------------------- HRR: what each scale sees


def scale_view(detector, path: str | Path) -> dict:
    """HRR on one image file, scale by scale, with the detector's own seed (io.image_seed of its pixels):
    ``image`` (H, W, 3), ``scales`` (K, S, S, 3) the noisy, line-enhanced crops x~_s,
    ``residuals`` (K, S, S) mean |x~_s - x^_s| over channels (None without retrospection),
    ``scale_probs`` (K,) p(generated) of each scale's auxiliary head, ``prob`` the final score."""
    from hrr_core.data.cache import CACHE_DTYPE
    from hrr_core.data.transforms import to_tensor
    from hrr_core.io import image_seed, image_to_array, load_image
    from hrr_core.models.msr import retrospect, scale_hierarchy

    if detector.spec.reads != "msr":
        raise ValueError(f"scale_view needs an HRR detector, got kind {detector.kind!r} ({detector.model_dir})")
    msr = detector.config.msr.resolved()
    array = image_to_array(load_image(path))  # (H, W, 3) uint8
    image = to_tensor(array)  # (3, H, W) in [0, 1], as hrr-detect reads it
    seed = image_seed(array, detector.noise_seed)  # the one seeding rule: the scores match hrr-detect's
    with torch.no_grad():
        x_tilde = scale_hierarchy([image], msr, torch.Generator().manual_seed(seed))  # (1, K, 3, S, S)
        r = retrospect(
            [image.to(detector.device)], detector.ldm, detector.config.msr, torch.Generator().manual_seed(seed)
        ).to(detector.device)  # (1, K, C', S, S)
        out = detector.model(r.to(CACHE_DTYPE).float())  # the input rounded as cached, as hrr-detect scores it
    residuals = None
    if msr.retrospection and msr.representation != "recon":
        residuals = r[0, :, -3:].mean(dim=1).cpu().numpy()  # (K, S, S): the residual channels come last
    return {
        "image": array,
        "scales": x_tilde[0].permute(0, 2, 3, 1).cpu().numpy(),
        "residuals": residuals,
        "scale_probs": torch.softmax(out.scale_logits[0].float(), dim=-1)[:, 1].cpu().numpy(),
        "prob": float(out.probs[0]),
        "factors": list(msr.scale_factors),
    }


def mistakes_figure(rows: pd.DataFrame, views: list[dict]) -> plt.Figure:
    """One row per mistake: the image, then each scale's residual with its p(generated)."""
    k = max(len(v["factors"]) for v in views)
    fig, axes = plt.subplots(len(views), k + 1, figsize=(2.2 * (k + 1), 2.3 * len(views)), squeeze=False)
    for ax_row, (_, row), view in zip(axes, rows.iterrows(), views):
        ax_row[0].imshow(view["image"])
        ax_row[0].set_title(
            f"{row['generator']} {row['size']}px\nlabel {'fake' if row['label'] else 'real'}, score {row['score']:.2f}",
            fontsize=8,
        )
        for s in range(k):
            ax = ax_row[s + 1]
            if s < len(view["factors"]):
                shown = view["residuals"][s] if view["residuals"] is not None else view["scales"][s]
                ax.imshow(shown, cmap="magma" if view["residuals"] is not None else None)
                ax.set_title(
                    f"x{view['factors'][s]:g} {'residual' if view['residuals'] is not None else 'input'}\n"
                    f"p(fake) {view['scale_probs'][s]:.2f}",
                    fontsize=8,
                )
        for ax in ax_row:
            ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- AFR: which dimensions survived


def afr_survival(model) -> pd.DataFrame:
    """One row per fused feature dimension j: ``group_norm`` ||alpha_j||_2, ``tau`` and ``survived``
    (alpha_j non-zero after the proximal group soft-thresholding, i.e. AFR still uses j),
    plus ``peak_anchor``, the anchor c_m of the largest |alpha_jm|. Empty when AFR is off."""
    afr = getattr(model, "afr", None) if model is not None else None
    if afr is None:
        return pd.DataFrame(columns=["dim", "group_norm", "tau", "survived", "peak_anchor"])
    alpha = afr.alpha.detach().cpu()  # (d, M)
    norms = afr.group_norms().cpu().numpy()
    peak = afr.anchors.cpu().numpy()[alpha.abs().argmax(dim=1).numpy()]
    table = pd.DataFrame(
        {
            "dim": np.arange(len(norms)),
            "group_norm": norms,
            "tau": afr.tau.cpu().numpy(),
            "survived": norms > 0,
            "peak_anchor": peak,
        }
    )
    return table.sort_values(["group_norm", "dim"], ascending=[False, True]).reset_index(drop=True)


def afr_figure(model, top: int = 32) -> plt.Figure:
    """Left: sorted group norms (survivors in colour); right: anchor weights alpha_jm of the
    ``top`` strongest surviving dimensions."""
    table = afr_survival(model)
    if table.empty:
        raise ValueError("this HRR model has no AFR head (afr.enabled: false); nothing survives or dies")
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1.2, 1]})
    a.bar(
        np.arange(len(table)),
        table["group_norm"],
        color=np.where(table["survived"], "tab:blue", "lightgrey"),
        width=1.0,
    )
    a.set_title(f"AFR: {int(table['survived'].sum())} of {len(table)} dimensions survived")
    a.set_xlabel("dimension (sorted by ||alpha_j||)"), a.set_ylabel("||alpha_j||_2")
    keep = table[table["survived"]].head(top)["dim"].to_numpy()
    alpha = model.afr.alpha.detach().cpu().numpy()[keep]  # (top, M)
    lim = float(np.abs(alpha).max()) if alpha.size else 1.0
    b.imshow(alpha if alpha.size else np.zeros((1, 1)), aspect="auto", cmap="coolwarm", vmin=-lim, vmax=lim)
    anchors = model.afr.anchors.cpu().numpy()
    b.set_xticks(np.arange(len(anchors)), [f"{c:.1f}" for c in anchors], fontsize=7)
    b.set_yticks(np.arange(len(keep)), keep, fontsize=6)
    b.set_xlabel("anchor c_m"), b.set_ylabel("dimension j")
    b.set_title("anchor weights alpha_jm of the strongest survivors")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- controls


def controls(render: Callable[..., None], choices: dict[str, list], use_widgets: bool = True) -> str:
    """Dropdowns calling ``render(**values)`` on change when ipywidgets is installed and
    ``use_widgets``; else one static ``render`` with the first choice of each.
    Returns "widgets" or "static"."""
    defaults = {k: v[0] for k, v in choices.items()}
    if use_widgets:
        try:
            import ipywidgets
            from IPython.display import display
        except ImportError:
            use_widgets = False
        else:
            display(
                ipywidgets.interactive(
                    render,
                    **{k: ipywidgets.Dropdown(options=v, value=defaults[k], description=k) for k, v in choices.items()},
                )
            )
            return "widgets"
    render(**defaults)
    return "static"


# ---------------------------------------------------------------- views for the notebook


def metrics_view(metrics: pd.DataFrame, show: Callable = print) -> tuple[Callable, dict]:
    """(render, choices): the metrics table filtered by method, test generator, size and
    perturbation, and AP per test generator and method of the selected rows."""

    def render(method=ANY, test=ANY, size="all", condition="none"):
        rows = filter_rows(metrics, method=method, test=test, size=size, condition=condition)
        if "photos" in rows:  # protocol-v2 tables also hold style-shift / in-style rows
            rows = rows[rows["photos"].fillna("all") == "all"]
        show(rows[[c for c in METRIC_COLUMNS if c in rows.columns]].round(3).reset_index(drop=True))
        if rows.empty:
            return
        fig, ax = plt.subplots(figsize=(7, 3.2))
        wide = rows.groupby(["test", "method"])["ap"].mean().unstack("method")
        wide.plot.bar(
            ax=ax, rot=30, ylim=(0, 1.02), title=f"AP per test generator (size {size}, condition {condition})"
        )
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        show(fig)
        plt.close(fig)

    return render, {
        "method": options(metrics, "method"),
        "test": options(metrics, "test"),
        "size": options(metrics, "size", "all"),
        "condition": options(metrics, "condition", "none"),
    }


def image_view(detector, path: str | Path) -> dict:
    """:func:`scale_view` for HRR detectors; for the others, the image and its score only."""
    if detector is not None and detector.spec.reads == "msr":
        return scale_view(detector, path)
    from hrr_core.io import image_to_array, load_image

    return {
        "image": image_to_array(load_image(path)),
        "scales": None,
        "residuals": None,
        "scale_probs": [],
        "prob": float("nan"),
        "factors": [],
    }


def mistakes_view(preds: pd.DataFrame, detector, n: int = 6, show: Callable = print) -> tuple[Callable, dict]:
    """(render, choices): the ``n`` most confident mistakes among the selected generator and
    size, as a table and a figure (HRR: each scale's residual and per-scale prediction)."""

    def render(generator=ANY, size=ANY):
        rows = confident_mistakes(filter_rows(preds, generator=generator, size=size), n)
        show(rows[["id", "generator", "size", "label", "score", "margin"]].round(3))
        if rows.empty:
            return
        fig = mistakes_figure(rows, [image_view(detector, p) for p in rows["path"]])
        show(fig)
        plt.close(fig)

    return render, {"generator": options(preds[preds["label"] == 1], "generator"), "size": options(preds, "size")}


def afr_report(detector) -> tuple[pd.DataFrame, plt.Figure | None, str]:
    """(survival table, figure, one-line summary) of the detector's AFR head."""
    model = getattr(detector, "model", None)
    if detector is None or detector.spec.reads != "msr" or model.afr is None:
        what = "no detector" if detector is None else f"{detector.method} has no AFR head"
        return afr_survival(None), None, f"AFR: {what}; nothing to show"
    table = afr_survival(model)
    note = (
        f"AFR of {detector.method}: {int(table['survived'].sum())} of {len(table)} fused dimensions survived "
        "the group soft-thresholding (||alpha_j|| > 0)"
    )
    fig = afr_figure(model)
    plt.close(fig)  # shown by the caller's display(fig), not again by the inline backend
    return table, fig, note


def compare_or_note(
    repo: str | Path, rev_a: str, rev_b: str, folder: str = "metrics/evaluate", changed_only: bool = True
) -> pd.DataFrame | str:
    """:func:`hrr_core.explore.compare_commits` (by default only the metrics that changed), or
    the reason it cannot run (not a git checkout, unknown revision) as text to print."""
    try:
        return compare_commits(repo, rev_a, rev_b, folder, changed_only)
    except ValueError as exc:
        return f"no commit comparison: {exc}"
