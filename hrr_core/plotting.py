"""Figures of the study (seaborn/matplotlib, Agg backend outside Jupyter). Each function takes
tidy data and returns a Figure; :func:`save_figure` writes it atomically as PNG."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence

import matplotlib

if "ipykernel" not in sys.modules:  # a Jupyter kernel (JupyterLab, papermill) keeps its inline backend to show figures
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from hrr_core.data.manifest import absolute_paths  # noqa: E402
from hrr_core.io import atomic_write_bytes, image_to_array, load_image  # noqa: E402

sns.set_theme(context="notebook", style="whitegrid")


def save_figure(fig: plt.Figure, path: str | os.PathLike, dpi: int = 120) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    plt.close(fig)


def sample_grid(
    manifest: pd.DataFrame, families: Sequence[str], n_rows: int = 4, split: str = "test", seed: int = 0
) -> plt.Figure:
    """Rows: real crops of ``split``; columns: the real, then the fake every family made from it
    (same content; ``ldm_sample`` is unconditional and shows an unrelated sample)."""
    paths = dict(zip(manifest["id"], absolute_paths(manifest)))
    size = int(manifest["width"].max())
    reals = manifest[(manifest["label"] == 0) & (manifest["split"] == split) & (manifest["width"] == size)]
    picks = reals.sample(min(n_rows, len(reals)), random_state=seed)["id"].tolist()
    cols = ["real", *families]
    fig, axes = plt.subplots(len(picks), len(cols), figsize=(1.8 * len(cols), 1.8 * len(picks)), squeeze=False)
    for r, rid in enumerate(picks):
        for c, name in enumerate(cols):
            ax = axes[r, c]
            key = rid if name == "real" else f"{rid}-{name}"
            if key in paths:
                ax.imshow(image_to_array(load_image(paths[key])))
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
    fig.suptitle(f"{split} crops at {size}px: real and each generator (content-matched)", fontsize=10)
    return fig


def _all_photos(results: pd.DataFrame) -> pd.DataFrame:
    """Rows over all test photos (protocol-v2 tables also hold style-shift / in-style rows)."""
    return results[results["photos"] == "all"] if "photos" in results else results


def metric_bars(results: pd.DataFrame, metrics: Sequence[str] = ("acc", "ap")) -> plt.Figure:
    """Per test generator bars of each metric with photo-level bootstrap 95% intervals, one hue
    per method (ACC at the threshold calibrated on validation)."""
    overall = _all_photos(results)
    overall = overall[overall["size"] == "all"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
    methods = sorted(overall["method"].unique())
    tests = list(dict.fromkeys(overall["test"]))
    width = 0.8 / max(1, len(methods))
    for ax, metric in zip(axes[0], metrics):
        for i, method in enumerate(methods):
            g = overall[overall["method"] == method].set_index("test").reindex(tests)
            x = np.arange(len(tests)) + (i - (len(methods) - 1) / 2) * width
            err = None
            if f"{metric}_lo" in g:
                err = np.vstack([g[metric] - g[f"{metric}_lo"], g[f"{metric}_hi"] - g[metric]]).clip(min=0)
            ax.bar(x, g[metric], width, yerr=err, capsize=2, label=method)
        ax.set_xticks(np.arange(len(tests)), tests, rotation=30, ha="right")
        ax.set_ylim(0, 1.02)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_title(f"{metric.upper()} per test generator (95% photo-level CI)")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def roc_figure(roc: pd.DataFrame) -> plt.Figure:
    """ROC curves from records ``method, test, fpr, tpr`` (one line per test generator)."""
    methods = sorted(roc["method"].unique())
    fig, axes = plt.subplots(1, len(methods), figsize=(4.5 * len(methods), 4), squeeze=False)
    for ax, method in zip(axes[0], methods):
        sns.lineplot(data=roc[roc["method"] == method], x="fpr", y="tpr", hue="test", ax=ax, estimator=None, sort=False)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        ax.set_title(f"ROC: {method}")
        ax.set_xlim(0, 1), ax.set_ylim(0, 1.01)
    fig.tight_layout()
    return fig


def size_figure(results: pd.DataFrame, metric: str = "acc") -> plt.Figure:
    """``metric`` per stored image size and test generator."""
    part = _all_photos(results)
    part = part[part["size"] != "all"].assign(size=lambda d: d["size"].astype(int))
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    sns.lineplot(data=part, x="size", y=metric, hue="test", style="method", markers=True, ax=ax)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{metric.upper()} by image size")
    return fig


def history_figure(history: pd.DataFrame) -> plt.Figure:
    """Training curves from a per-epoch history (columns epoch, method and metric names)."""
    value_cols = [c for c in history.columns if "/" in c and history[c].notna().any()]  # train/*, val/*, model/*
    long = history.melt(id_vars=["epoch", "method"], value_vars=value_cols, var_name="metric").dropna()
    g = sns.relplot(
        data=long,
        x="epoch",
        y="value",
        hue="method",
        col="metric",
        col_wrap=3,
        kind="line",
        height=2.6,
        facet_kws={"sharey": False},
        marker="o",
    )
    return g.figure


def ablation_figure(rows: pd.DataFrame) -> plt.Figure:
    """Mean ACC and AP over test generators per ablation row (``row, acc, ap``), full HRR first."""
    long = rows.melt(id_vars=["row"], value_vars=["acc", "ap"], var_name="metric")
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(rows) + 2), 3.6))
    sns.barplot(data=long, x="row", y="value", hue="metric", ax=ax)
    ax.set_ylim(0, 1.02)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("")
    ax.set_title("HRR ablations: mean over test generators")
    ax.tick_params(axis="x", rotation=30)
    return fig


def cross_generator_heatmap(study: pd.DataFrame, metric: str = "ap") -> plt.Figure:
    """One train × test heatmap of ``metric`` per method (clean test set, seed of the main run)."""
    none = study[study["condition"] == "none"]
    methods = sorted(none["method"].unique())
    fig, axes = plt.subplots(
        1, len(methods), figsize=(3.6 * len(methods), 0.5 * none["train"].nunique() + 2.4), squeeze=False
    )
    for ax, method in zip(axes[0], methods):
        part = none[none["method"] == method]
        part = part[part["seed"] == part["seed"].min()]
        grid = part.pivot_table(index="train", columns="test", values=metric)
        sns.heatmap(
            grid,
            vmin=0.5,
            vmax=1.0,
            annot=True,
            fmt=".2f",
            cmap="viridis",
            cbar=False,
            ax=ax,
            annot_kws={"fontsize": 7},
        )
        ax.set_title(f"{method}: {metric.upper()}", fontsize=10)
        ax.set_xlabel("test generator"), ax.set_ylabel("trained on")
        ax.tick_params(axis="x", rotation=40)
    fig.tight_layout()
    return fig


def robustness_figure(curves: pd.DataFrame, bias: pd.DataFrame, metric: str = "ap") -> plt.Figure:
    """Curves ``method, condition, level, <metric>`` (one panel per condition) and a last panel
    of clean vs harmonised ``metric`` per method (the bias audit)."""
    conds = [c for c in ("rescale", "jpeg", "blur", "downscale") if c in set(curves["condition"])]
    fig, axes = plt.subplots(1, len(conds) + 1, figsize=(3.8 * (len(conds) + 1), 3.6), squeeze=False)
    xlabels = {
        "rescale": "scale factor (x stored size)",
        "jpeg": "JPEG quality (100 = clean)",
        "blur": "Gaussian sigma (px)",
        "downscale": "downscale factor (1 = clean)",
    }
    for ax, cond in zip(axes[0], conds):
        sns.lineplot(
            data=curves[curves["condition"] == cond],
            x="level",
            y=metric,
            hue="method",
            marker="o",
            ax=ax,
            legend=ax is axes[0][0],
        )
        if ax is axes[0][0]:
            ax.legend(fontsize=7, loc="lower left")
        ax.set_ylim(0.4, 1.02), ax.set_xlabel(xlabels[cond]), ax.set_title(cond)
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        if cond == "jpeg":
            ax.invert_xaxis()
    ax = axes[0][-1]
    if len(bias):
        sns.barplot(data=bias, x="method", y=metric, hue="condition", ax=ax)
        ax.tick_params(axis="x", rotation=40)
    ax.set_ylim(0, 1.02), ax.set_title("bias audit: one size + one codec")
    fig.suptitle(
        f"Robustness of the main model, mean {metric.upper()} over test generators (both classes transformed alike)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


def pr_figure(pr: pd.DataFrame) -> plt.Figure:
    """Precision-recall curves from records ``method, test, recall, precision``."""
    methods = sorted(pr["method"].unique())
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.8), squeeze=False)
    for ax, method in zip(axes[0], methods):
        sns.lineplot(
            data=pr[pr["method"] == method],
            x="recall",
            y="precision",
            hue="test",
            ax=ax,
            estimator=None,
            sort=False,
            legend=ax is axes[0][0],
            drawstyle="steps-post",
        )
        ax.set_title(f"PR: {method}"), ax.set_xlim(0, 1), ax.set_ylim(0, 1.02)
    fig.tight_layout()
    return fig


def afr_sparsity_figure(rows: pd.DataFrame) -> plt.Figure:
    """AFR dimensions kept (fraction) and mean AP against the sparsity weight lambda_omega
    (records ``lambda_omega, active_fraction, ap, row``)."""
    rows = rows.sort_values("lambda_omega")
    x = np.log2(rows["lambda_omega"].to_numpy() + 0.125)  # log axis with lambda = 0 on it
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    ax.plot(x, rows["active_fraction"], "o-", label="AFR dims kept (fraction)")
    ax.plot(x, rows["ap"], "s--", label="mean AP")
    ax.set_xticks(x, [f"{v:g}" for v in rows["lambda_omega"]])
    ax.set_xlabel("sparsity weight lambda_omega"), ax.set_ylim(0, 1.02), ax.legend(fontsize=8)
    ax.set_title("AFR sparsity against its weight")
    return fig


def residual_grid(
    images: list[np.ndarray], residuals: np.ndarray, names: Sequence[str], scales: Sequence[float]
) -> plt.Figure:
    """Rows: one image each (``names``); columns: the image, then its retrospection residual
    |x~_s - x^_s| at every scale s (``residuals`` (B, K, 3, S, S), shown as mean over channels)."""
    k = residuals.shape[1]
    fig, axes = plt.subplots(len(images), k + 1, figsize=(1.8 * (k + 1), 1.8 * len(images)), squeeze=False)
    vmax = float(np.percentile(residuals.mean(axis=2), 99)) or 1.0
    for r, (img, name) in enumerate(zip(images, names)):
        axes[r, 0].imshow(img)
        axes[r, 0].set_ylabel(name, fontsize=8)
        for j in range(k):
            axes[r, j + 1].imshow(residuals[r, j].mean(axis=0), cmap="magma", vmin=0, vmax=vmax)
            if r == 0:
                axes[r, j + 1].set_title(f"residual, scale {scales[j]:g}", fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([]), ax.set_yticks([])
    axes[0, 0].set_title("image", fontsize=8)
    fig.suptitle("HRR retrospection residuals (same content: real, then each generator)", fontsize=10)
    return fig
