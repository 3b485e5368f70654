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


def sample_grid(manifest: pd.DataFrame, families: Sequence[str], n_rows: int = 4, split: str = "test", seed: int = 0) -> plt.Figure:
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


def metric_bars(results: pd.DataFrame, metrics: Sequence[str] = ("acc", "ap")) -> plt.Figure:
    """Per test generator bars of each metric with bootstrap 95% intervals, one hue per method."""
    overall = results[results["size"] == "all"]
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
        ax.set_title(f"{metric.upper()} per test generator (95% bootstrap CI)")
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
    part = results[results["size"] != "all"].assign(size=lambda d: d["size"].astype(int))
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    sns.lineplot(data=part, x="size", y=metric, hue="test", style="method", markers=True, ax=ax)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{metric.upper()} by image size")
    return fig


def history_figure(history: pd.DataFrame) -> plt.Figure:
    """Training curves from a per-epoch history (columns epoch, method and metric names)."""
    value_cols = [c for c in history.columns if "/" in c and history[c].notna().any()]  # train/*, val/*, model/*
    long = history.melt(id_vars=["epoch", "method"], value_vars=value_cols, var_name="metric").dropna()
    g = sns.relplot(data=long, x="epoch", y="value", hue="method", col="metric", col_wrap=3, kind="line",
                    height=2.6, facet_kws={"sharey": False}, marker="o")
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
