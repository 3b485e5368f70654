"""Realism gates per fake family, measured on the stored files (issue #15 item 6).

A family is realistic enough to benchmark on when its fakes stay close to the reals they are
made from and tested against, so that a detector cannot win on a global shift:

    psnr_db          median PSNR of each fake against its matched real >= 25 dB (inpainting
                     families: inside the mask, and ``outside_mask_max_abs``, the largest
                     absolute difference outside it, must be 0: untouched pixels identical)
    luma_diff        |mean luma(fakes) - mean luma(reals)| <= 0.02 (luma in [0, 1])
    saturation_diff  |mean HSV saturation(fakes) - mean saturation(reals)| <= 0.02
    laplacian_ratio  mean Laplacian variance of the fakes / that of the reals in [0.5, 2]
    trivial_ap       the trivial colour + spectrum detector's AP on test < 0.90
                     (:func:`hrr_core.pipeline.prepare.family_difficulty`, given as input)

Every gate reports the measured value, the threshold and whether it passed (``None`` values:
not measurable, e.g. no matched real, which fails). The means are over every split of the
stored files: fakes against :func:`hrr_core.benchmark.file_audit.reals_for`. The features come
from :func:`hrr_core.benchmark.file_audit.file_features` (one decode per file).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hrr_core.benchmark.file_audit import reals_for

PSNR_MIN = 25.0
LUMA_MAX_DIFF = 0.02
SATURATION_MAX_DIFF = 0.02
LAPLACIAN_RATIO = (0.5, 2.0)
TRIVIAL_AP_MAX = 0.90
OUTSIDE_MASK_MAX = 0.0
TARGET_PASSING = 4  # issue #15: the v2 benchmark needs at least four families passing every gate
GATE_LABELS = {
    "psnr_db": "PSNR dB ≥ 25",
    "luma_diff": "Δ luma ≤ 0.02",
    "saturation_diff": "Δ saturation ≤ 0.02",
    "laplacian_ratio": "Laplacian ratio in [0.5, 2]",
    "trivial_ap": "trivial AP < 0.90",
    "outside_mask_max_abs": "outside-mask max Δ = 0",
}
DIGITS = {"psnr_db": 2, "laplacian_ratio": 3, "outside_mask_max_abs": 0}  # others: 4


def is_inpainting(generator: str) -> bool:
    """An inpainting family: its name contains "inpaint"; its fakes carry a mask."""
    return "inpaint" in generator.lower()


def _num(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return None if not np.isfinite(v) else round(v, 4)


def gate(value, op: str, threshold) -> dict:
    """One gate: ``value`` (None: not measured, fails) against ``threshold`` with ``op``, one of
    ">=", "<=", "<" or "in" (a closed [lo, hi] range)."""
    v = _num(value)
    if v is None:
        passed = False
    elif op == ">=":
        passed = v >= threshold
    elif op == "<=":
        passed = v <= threshold
    elif op == "<":
        passed = v < threshold
    elif op == "in":
        passed = threshold[0] <= v <= threshold[1]
    else:
        raise ValueError(f"op must be one of >=, <=, <, in; got {op!r}")
    return {"value": v, "op": op, "threshold": list(threshold) if op == "in" else threshold, "passed": bool(passed)}


def family_gates(features: pd.DataFrame, family: str, trivial_ap: float | None = None) -> dict:
    """The gates of one family from :func:`hrr_core.benchmark.file_audit.file_features` rows."""
    fakes = features[(features["label"] == 1) & (features["generator"] == family)]
    reals = reals_for(features, family)
    if fakes.empty or reals.empty:
        raise ValueError(f"family {family!r} has {len(fakes)} fakes and {len(reals)} reals; both are needed")
    inpaint = is_inpainting(family)
    col = "psnr_mask_db" if inpaint else "psnr_db"
    psnr = fakes[col].dropna()
    gates = {"psnr_db": gate(psnr.median() if len(psnr) else None, ">=", PSNR_MIN)}
    gates["luma_diff"] = gate(abs(fakes["luma"].mean() - reals["luma"].mean()), "<=", LUMA_MAX_DIFF)
    gates["saturation_diff"] = gate(
        abs(fakes["saturation"].mean() - reals["saturation"].mean()), "<=", SATURATION_MAX_DIFF
    )
    real_lap = reals["laplacian_var"].mean()
    ratio = fakes["laplacian_var"].mean() / real_lap if real_lap > 0 else None
    gates["laplacian_ratio"] = gate(ratio, "in", LAPLACIAN_RATIO)
    gates["trivial_ap"] = gate(trivial_ap, "<", TRIVIAL_AP_MAX)
    if inpaint:
        outside = fakes["outside_max_abs"]
        # every fake needs a mask and a matched real, else the outside check is not measured
        value = None if outside.isna().any() else outside.max()
        gates["outside_mask_max_abs"] = gate(value, "<=", OUTSIDE_MASK_MAX)
    return {
        "gates": gates,
        "passes_all": all(g["passed"] for g in gates.values()),
        "n_fake": int(len(fakes)),
        "n_real": int(len(reals)),
        "n_matched": int(len(psnr)),
        "psnr_scope": "mask" if inpaint else "image",
    }


def realism_gates(
    features: pd.DataFrame, trivial_ap: dict[str, float] | None = None, target: int = TARGET_PASSING
) -> dict:
    """:func:`family_gates` of every fake family, and the benchmark line "N of M families pass
    all gates" (``target_met``: at least ``target`` do)."""
    trivial_ap = trivial_ap or {}
    fams = sorted(set(features.loc[features["label"] == 1, "generator"]))
    out = {f: family_gates(features, f, trivial_ap.get(f)) for f in fams}
    n = sum(v["passes_all"] for v in out.values())
    return {
        "families": out,
        "n_pass": int(n),
        "n_families": len(fams),
        "summary": f"{n} of {len(fams)} families pass all gates",
        "target": target,
        "target_met": n >= target,
    }


def _cell(g: dict | None, digits: int = 4) -> str:
    if g is None:
        return "–"
    v = "n/a" if g["value"] is None else f"{g['value']:.{digits}f}"
    return f"{v} {'PASS' if g['passed'] else 'FAIL'}"


def gates_markdown(gates: dict) -> list[str]:
    """Dataset-card lines: one row per family, measured value and PASS/FAIL per gate."""
    keys = list(GATE_LABELS)
    if not any("outside_mask_max_abs" in v["gates"] for v in gates["families"].values()):
        keys.remove("outside_mask_max_abs")
    lines = [
        "Measured on the stored files (every split). PSNR: median over fakes against the real crop each "
        "was made from (inside the mask for inpainting families; outside it, the largest absolute pixel "
        "difference must be 0); Δ: absolute difference between the fakes' mean and the mean of the reals "
        "they are tested against (luma in [0, 1], HSV saturation); Laplacian ratio: mean Laplacian "
        "variance, fakes over reals; "
        f"trivial AP: as above. {gates['summary']} (target: at least {gates['target']}).",
        "",
        "| family | " + " | ".join(GATE_LABELS[k] for k in keys) + " | all gates |",
        "|---|" + "---|" * (len(keys) + 1),
    ]
    for fam, v in gates["families"].items():
        cells = " | ".join(_cell(v["gates"].get(k), DIGITS.get(k, 4)) for k in keys)
        lines.append(f"| {fam} | {cells} | {'PASS' if v['passes_all'] else 'FAIL'} |")
    return lines
