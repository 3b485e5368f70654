"""File-level bias audit: what the stored files themselves give away, class against class.

:func:`hrr_core.benchmark.audit.bias_audit` compares manifest columns, which the embedded build
fills from one config value for both classes, so it cannot see a shortcut the pixels or the
bytes carry. This audit decodes every file once (:func:`file_features`) and measures, per file:

    bytes_per_pixel   stored file size / (width x height): codec and compressibility
    width, height     decoded pixel size; ``dimensions`` ("WxH") as a categorical feature
    mode, format      the PIL mode and format of the stored file (categorical)
    jpeg_quality      estimated JPEG quality of the luminance table (0: not a JPEG)
    blockiness        mean absolute luma step across the 8x8 block boundaries over the mean
                      step elsewhere: 1 without a block grid, above 1 for blocking JPEG
    mean_r/g/b, std_r/g/b   colour moments in [0, 1]
    luma, saturation  mean BT.601 luma in [0, 1] and mean HSV saturation
    laplacian_var     variance of the 4-neighbour Laplacian of luma (0..255): sharpness

and, for a fake matched to its real (id = the real's id + ``-<generator>``), the PSNR against
the real over the whole image and inside the inpainting mask
(:func:`hrr_core.data.manifest.mask_boxes`), and the largest absolute difference outside it.

:func:`file_audit` then compares, per generator, its fakes with the reals it is evaluated
against: the categorical features' distributions (total variation distance), and a shortcut
detector, a standardised logistic regression on the numeric features alone, trained on train
rows and scored on test rows (cross-validation over photo groups when a split lacks a class).
The audit fails when that detector's AP exceeds :data:`SHORTCUT_AP_MAX` or a categorical
feature differs, naming the generator and the features most responsible.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from hrr_core.benchmark.stats import LUMA
from hrr_core.data.manifest import absolute_paths, mask_boxes
from hrr_core.data.transforms import estimate_jpeg_quality
from hrr_core.io import to_rgb

REAL = "real"
SHORTCUT_AP_MAX = 0.60  # above this the file-level features alone separate the classes
TOLERANCE = 0.02  # total variation distance a categorical feature may differ by
NUMERIC = (
    "bytes_per_pixel",
    "width",
    "height",
    "jpeg_quality",
    "blockiness",
    "mean_r",
    "mean_g",
    "mean_b",
    "std_r",
    "std_g",
    "std_b",
    "saturation",
    "laplacian_var",
)
CATEGORICAL = ("mode", "dimensions", "format")
LOGGED = ("bytes_per_pixel", "laplacian_var")  # log1p before standardising: heavy right tails
PSNR_CAP = 99.0  # dB reported for identical pixels
EFFECT_CAP = 999.0  # |effect size| reported for two constant, different classes


class FileAuditError(ValueError):
    """A file-level shortcut separates a generator's fakes from its reals."""


def reals_for(manifest: pd.DataFrame, generator: str) -> pd.DataFrame:
    """The reals a generator's fakes are evaluated against: reals tagged with the generator if
    any, else the shared ``real`` ones (with a ``subset`` column, those of the fakes' subsets)."""
    reals = manifest[manifest["label"] == 0]
    own = reals[reals["generator"] == generator]
    if len(own):
        return own
    shared = reals[reals["generator"] == REAL]
    if "subset" in manifest.columns:  # real benchmarks: the shared reals of the fakes' subsets (as evaluation.protocol)
        fakes = manifest[(manifest["label"] == 1) & (manifest["generator"] == generator)]
        shared = shared[shared["subset"].isin(set(fakes["subset"]))]
    return shared


# ---------------------------------------------------------------- per-file measurements


def blockiness(gray: np.ndarray) -> float:
    """(H, W) luma -> mean |step| across the 8x8 grid's boundaries (between columns 8k-1 and 8k,
    rows likewise) over the mean |step| at every other position. 1.0 for an image without a
    grid (or one smaller than 16 px a side, or a constant one); well above 1 for blocking JPEG."""
    g = np.asarray(gray, np.float64)
    h, w = g.shape
    if min(h, w) < 16:
        return 1.0
    dx = np.abs(np.diff(g, axis=1))  # (H, W-1): step between column j and j+1
    dy = np.abs(np.diff(g, axis=0))  # (H-1, W)
    on_x, on_y = (np.arange(w - 1) % 8) == 7, (np.arange(h - 1) % 8) == 7
    on = dx[:, on_x].sum() + dy[on_y].sum()
    n_on = dx[:, on_x].size + dy[on_y].size
    off = dx[:, ~on_x].sum() + dy[~on_y].sum()
    n_off = dx[:, ~on_x].size + dy[~on_y].size
    mean_on, mean_off = on / n_on, off / n_off
    if mean_off <= 1e-12:
        return 1.0 if mean_on <= 1e-12 else float(mean_on / 1e-3)
    return float(mean_on / mean_off)


def pixel_features(img: np.ndarray) -> dict[str, float]:
    """Colour moments, luma, saturation, Laplacian variance and blockiness of one (H, W, 3)
    uint8 image (the definitions of :mod:`hrr_core.benchmark.stats`, in one pass)."""
    a = np.asarray(img)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or min(a.shape[:2]) < 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image of at least 3x3 pixels, got {a.shape} {a.dtype}")
    f = a.astype(np.float64)  # (H, W, 3) 0..255
    flat = f.reshape(-1, 3)
    mean, std = flat.mean(0) / 255.0, flat.std(0) / 255.0
    g = f @ LUMA  # (H, W) 0..255
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]
    hi, lo = a.max(2).astype(np.float64), a.min(2).astype(np.float64)
    sat = np.where(hi > 0, (hi - lo) / np.maximum(hi, 1.0), 0.0)
    return {
        "blockiness": blockiness(g),
        **{f"mean_{c}": float(v) for c, v in zip("rgb", mean)},
        **{f"std_{c}": float(v) for c, v in zip("rgb", std)},
        "luma": float(g.mean() / 255.0),
        "saturation": float(sat.mean()),
        "laplacian_var": float(lap.var()),
    }


def _psnr(mse: float) -> float:
    return PSNR_CAP if mse <= 0 else float(min(PSNR_CAP, 10 * np.log10(255.0**2 / mse)))


def pair_measures(real: np.ndarray, fake: np.ndarray, box: tuple[int, int, int, int] | None = None) -> dict:
    """PSNR (dB, capped at 99) of a fake against its real; with an inpainting ``box`` (top,
    left, h, w) also the PSNR inside it and the largest absolute pixel difference outside it."""
    if real.shape != fake.shape:
        raise ValueError(f"matched real and fake differ in shape: {real.shape} vs {fake.shape}")
    d = fake.astype(np.int16) - real.astype(np.int16)  # (H, W, 3)
    out = {"psnr_db": _psnr(float(np.mean(d.astype(np.float64) ** 2))), "psnr_mask_db": np.nan}
    out["outside_max_abs"] = np.nan
    if box is not None:
        top, left, h, w = box
        inside = np.zeros(d.shape[:2], bool)
        inside[top : top + h, left : left + w] = True
        out["psnr_mask_db"] = _psnr(float(np.mean(d[inside].astype(np.float64) ** 2)))
        rest = np.abs(d[~inside])
        out["outside_max_abs"] = float(rest.max()) if rest.size else 0.0
    return out


_QUALITY_CACHE: dict[tuple, int] = {}


def _jpeg_quality(im: Image.Image) -> int:
    tables = getattr(im, "quantization", None)
    if im.format != "JPEG" or not tables:
        return 0
    key = tuple(tables[0])
    if key not in _QUALITY_CACHE:
        _QUALITY_CACHE[key] = int(estimate_jpeg_quality(im) or 0)
    return _QUALITY_CACHE[key]


def decode(data: bytes, name: str = "<bytes>") -> tuple[dict, np.ndarray]:
    """(file-level descriptors, (H, W, 3) uint8 pixels) of one stored file's bytes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                info = {"format": (im.format or "").lower(), "mode": im.mode, "jpeg_quality": _jpeg_quality(im)}
                im = ImageOps.exif_transpose(im) or im
                rgb = np.asarray(to_rgb(im), dtype=np.uint8)
    except Exception as exc:  # PIL raises assorted errors on bad input
        raise ValueError(f"{name}: not a readable image ({type(exc).__name__}: {exc})") from None
    h, w = rgb.shape[:2]
    info.update(width=w, height=h, dimensions=f"{w}x{h}", bytes_per_pixel=len(data) / (w * h))
    return info, rgb


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def file_features(manifest: pd.DataFrame, read: Callable[[str], bytes] = _read) -> pd.DataFrame:
    """One row per manifest row (in manifest order): id, generator, label, split, group (the
    ``photo`` column, else ``source``), subset when present, the file-level features of the
    module docstring, and for fakes matched to a real of the same shape ``psnr_db``,
    ``psnr_mask_db`` and ``outside_max_abs`` (NaN otherwise; the mask ones for masked rows
    only). Each file is read and decoded once; reals some fake was made from stay in memory
    until the end."""
    boxes = mask_boxes(manifest)
    order = np.argsort(manifest["label"].to_numpy(), kind="stable")  # reals first, to match fakes
    ids = manifest["id"].astype(str).to_numpy()
    gens = manifest["generator"].astype(str).to_numpy()
    labels = manifest["label"].astype(int).to_numpy()
    paths = absolute_paths(manifest).to_numpy()
    wanted = {i.removesuffix(f"-{g}") for i, g, y in zip(ids, gens, labels) if y == 1}
    reals: dict[str, np.ndarray] = {}
    rows: list[dict | None] = [None] * len(manifest)
    for i in order:
        info, rgb = decode(read(paths[i]), paths[i])
        row = {**info, **pixel_features(rgb), "psnr_db": np.nan, "psnr_mask_db": np.nan, "outside_max_abs": np.nan}
        if labels[i] == 0:
            if ids[i] in wanted:
                reals[ids[i]] = rgb
        else:
            real = reals.get(ids[i].removesuffix(f"-{gens[i]}"))
            if real is not None and real.shape == rgb.shape:
                box = tuple(int(v) for v in boxes[i]) if boxes[i, 0] >= 0 else None
                row.update(pair_measures(real, rgb, box))
        rows[i] = row
    group = manifest["photo"] if "photo" in manifest.columns else manifest["source"]
    meta = {
        "id": ids,
        "generator": gens,
        "label": labels,
        "split": manifest["split"].astype(str).to_numpy(),
        "group": group.astype(str).to_numpy(),
    }
    if "subset" in manifest.columns:
        meta["subset"] = manifest["subset"].astype(str).to_numpy()
    return pd.concat([pd.DataFrame(meta), pd.DataFrame(rows)], axis=1)


# ---------------------------------------------------------------- the shortcut detector


def design_matrix(features: pd.DataFrame) -> np.ndarray:
    """(N, len(NUMERIC)) float64: the numeric features, :data:`LOGGED` ones through log1p."""
    cols = [
        np.log1p(features[c].to_numpy(np.float64)) if c in LOGGED else features[c].to_numpy(np.float64) for c in NUMERIC
    ]
    return np.stack(cols, axis=1)


def _classifier(seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000, random_state=seed))


def _both(y: np.ndarray) -> bool:
    return bool(len(y)) and 0 < int(y.sum()) < len(y)


def shortcut_detector(features: pd.DataFrame, seed: int = 0, folds: int = 5) -> dict:
    """AP (fake = positive) of a standardised logistic regression on :func:`design_matrix` of
    one generator's fakes and reals (a :func:`file_features` frame with both classes).

    Trained on ``train`` rows and scored on ``test`` rows when both splits hold both classes
    (``evaluated_on: "test"``); otherwise out-of-fold over photo groups (StratifiedGroupKFold,
    at most ``folds`` folds; ``"cv-<k>"``). ``ap`` is None when neither is possible. Also the
    standardised coefficients of the model fitted on the training rows (all rows under
    cross-validation), largest magnitude first."""
    from sklearn.metrics import average_precision_score
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    x, y = design_matrix(features), features["label"].to_numpy(int)
    split = features["split"].to_numpy()
    train, test = split == "train", split == "test"
    out: dict = {"ap": None, "evaluated_on": None, "n_train": 0, "n_test": 0, "coefficients": {}}
    if _both(y[train]) and _both(y[test]):
        clf = _classifier(seed).fit(x[train], y[train])
        out.update(
            ap=float(average_precision_score(y[test], clf.predict_proba(x[test])[:, 1])),
            evaluated_on="test",
            n_train=int(train.sum()),
            n_test=int(test.sum()),
        )
        fitted = clf
    else:
        groups = features["group"].to_numpy()
        k = min(folds, len(set(groups[y == 0])), len(set(groups[y == 1])))
        if k < 2 or not _both(y):
            return out
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # fewer members than folds in a class
                cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
                prob = cross_val_predict(_classifier(seed), x, y, groups=groups, cv=cv, method="predict_proba")
        except ValueError:  # a training fold with one class
            return out
        out.update(
            ap=float(average_precision_score(y, prob[:, 1])), evaluated_on=f"cv-{k}", n_train=len(y), n_test=len(y)
        )
        fitted = _classifier(seed).fit(x, y)
    coef = fitted[-1].coef_[0]
    ranked = sorted(zip(NUMERIC, coef), key=lambda t: -abs(t[1]))
    out["coefficients"] = {name: float(c) for name, c in ranked}
    return out


# ---------------------------------------------------------------- the audit


def _distribution(values: pd.Series) -> dict[str, float]:
    counts = values.astype(str).value_counts(normalize=True).sort_index()
    return {k: float(v) for k, v in counts.items()}


def _tvd(a: dict[str, float], b: dict[str, float]) -> float:
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def _moments(values: np.ndarray) -> dict:
    v = values[~np.isnan(values)]
    return {"mean": float(v.mean()), "std": float(v.std())} if len(v) else {"mean": None, "std": None}


def effect_size(real: np.ndarray, fake: np.ndarray) -> float:
    """Standardised mean difference (fake - real) / pooled std, clipped to +-:data:`EFFECT_CAP`
    (what two constant, different classes give); 0 when both are constant and equal."""
    diff = float(np.mean(fake) - np.mean(real))
    pooled = float(np.sqrt(0.5 * (np.var(real) + np.var(fake))))
    if pooled <= 1e-12:
        return 0.0 if abs(diff) <= 1e-12 else float(np.sign(diff) * EFFECT_CAP)
    return float(np.clip(diff / pooled, -EFFECT_CAP, EFFECT_CAP))


def class_summary(features: pd.DataFrame) -> dict:
    """Mean/std of every numeric feature and the distribution of every categorical one."""
    return {
        "n": int(len(features)),
        "numeric": {c: _moments(features[c].to_numpy(np.float64)) for c in NUMERIC},
        "categorical": {c: _distribution(features[c]) for c in CATEGORICAL},
    }


def _fmt(v: float) -> str:
    return f"{v:+.2f}"


def _round(obj, digits: int = 4):
    if isinstance(obj, dict):
        return {k: _round(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_round(v, digits) for v in obj]
    if isinstance(obj, float):
        return obj if not np.isfinite(obj) else round(obj, digits)
    return obj


def file_audit(
    features: pd.DataFrame, ap_max: float = SHORTCUT_AP_MAX, tolerance: float = TOLERANCE, seed: int = 0
) -> dict:
    """Per class and per generator (fakes vs :func:`reals_for`): :func:`class_summary`, the
    effect size of every numeric feature, the TVD of every categorical one, and the
    :func:`shortcut_detector`. ``ok`` False with ``problems`` naming the generator and the
    features most responsible when the detector's AP exceeds ``ap_max`` or a categorical
    feature's TVD exceeds ``tolerance``. Numbers rounded to 4 decimals."""
    problems, per_gen = [], {}
    for gen in sorted(set(features.loc[features["label"] == 1, "generator"])):
        fakes = features[(features["label"] == 1) & (features["generator"] == gen)]
        reals = reals_for(features, gen)
        entry: dict = {"n_real": int(len(reals)), "n_fake": int(len(fakes))}
        effects = (
            {c: effect_size(reals[c].to_numpy(np.float64), fakes[c].to_numpy(np.float64)) for c in NUMERIC}
            if len(reals) and len(fakes)
            else {}
        )
        entry["numeric"] = {
            c: {
                "real": _moments(reals[c].to_numpy(np.float64)),
                "fake": _moments(fakes[c].to_numpy(np.float64)),
                "effect_size": effects.get(c),
            }
            for c in NUMERIC
        }
        entry["categorical"] = {}
        for c in CATEGORICAL:
            r, f = _distribution(reals[c]), _distribution(fakes[c])
            tvd = _tvd(r, f)
            entry["categorical"][c] = {"real": r, "fake": f, "tvd": tvd}
            if tvd > tolerance:
                problems.append(
                    f"{gen}: file {c} differs between classes (TVD {tvd:.3f} > {tolerance}); "
                    f"real {_top(r)} vs fake {_top(f)}"
                )
        det = shortcut_detector(pd.concat([reals, fakes]), seed) if len(reals) and len(fakes) else {"ap": None}
        entry["shortcut"] = det
        if det["ap"] is not None and det["ap"] > ap_max:
            coefs = list(det["coefficients"].items())[:3]
            top_d = sorted(effects.items(), key=lambda t: -abs(t[1]))[:3]
            problems.append(
                f"{gen}: a logistic regression on file-level features alone reaches AP {det['ap']:.4f} > {ap_max} "
                f"({det['evaluated_on']}); largest standardised coefficients: "
                + ", ".join(f"{n} {c:+.2f}" for n, c in coefs)
                + "; largest class differences (effect size, fake - real): "
                + ", ".join(f"{n} {_fmt(d)}" for n, d in top_d)
            )
        per_gen[gen] = entry
    per_class = {
        "real": class_summary(features[features["label"] == 0]),
        "fake": class_summary(features[features["label"] == 1]),
    }
    return _round(
        {
            "ok": not problems,
            "problems": problems,
            "ap_max": ap_max,
            "tolerance": tolerance,
            "features": list(NUMERIC),
            "categorical": list(CATEGORICAL),
            "per_class": per_class,
            "per_generator": per_gen,
        }
    )


def _top(dist: dict[str, float], n: int = 3) -> str:
    items = sorted(dist.items(), key=lambda t: -t[1])
    more = f", +{len(items) - n} more" if len(items) > n else ""
    return "{" + ", ".join(f"{k}: {v:.2f}" for k, v in items[:n]) + more + "}"


def assert_no_file_shortcut(audit: dict) -> None:
    """Raise :class:`FileAuditError` listing every problem of a failed :func:`file_audit`."""
    if not audit["ok"]:
        raise FileAuditError(
            "file-level bias audit failed; the stored files alone separate fakes from reals:\n  "
            + "\n  ".join(audit["problems"])
        )


def enforce(
    audit: dict, policy: str, echo: Callable[[str], object] = print, setting: str = "benchmark.bias_audit"
) -> None:
    """Apply a ``warn`` | ``fail`` policy (as ``real_benchmark.bias_audit``) to a file-level
    audit: echo that it passed; under ``fail`` raise :class:`FileAuditError`; under ``warn``
    echo the problems."""
    if policy not in ("warn", "fail"):
        raise ValueError(f"{setting} must be warn or fail, got {policy!r}")
    if audit["ok"]:
        echo("file-level bias audit: passed")
    elif policy == "fail":
        assert_no_file_shortcut(audit)
    else:
        echo(f"file-level bias audit: WARNING ({setting}: warn)\n  " + "\n  ".join(audit["problems"]))


def file_audit_markdown(audit: dict) -> list[str]:
    """Dataset-card lines: per generator the shortcut AP, its top coefficients, the largest
    class differences and the categorical TVDs; then the problems."""
    lines = [
        "Measured on the decoded stored files, not the manifest. Shortcut AP: a standardised logistic "
        f"regression on {', '.join(audit['features'])} alone (log1p of {', '.join(LOGGED)}), trained on train "
        f"rows and scored on test rows (cv-k: out-of-fold over photo groups); the audit fails above "
        f"{audit['ap_max']}, or when {', '.join(audit['categorical'])} differ between classes (TVD > "
        f"{audit['tolerance']}). Effect size: (fake mean - real mean) / pooled std.",
        "",
        "| generator | fakes | reals | shortcut AP | evaluated on | top coefficients | largest differences "
        "(effect size) | categorical TVD |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for gen, e in audit["per_generator"].items():
        det = e["shortcut"]
        ap = "–" if det.get("ap") is None else f"{det['ap']:.3f}"
        coefs = ", ".join(f"{n} {c:+.2f}" for n, c in list(det.get("coefficients", {}).items())[:3]) or "–"
        diffs = sorted(
            ((c, v["effect_size"]) for c, v in e["numeric"].items() if v["effect_size"] is not None),
            key=lambda t: -abs(t[1]),
        )[:3]
        tvds = ", ".join(f"{c} {v['tvd']:.2f}" for c, v in e["categorical"].items())
        lines.append(
            f"| {gen} | {e['n_fake']} | {e['n_real']} | {ap} | {det.get('evaluated_on') or '–'} | {coefs} | "
            f"{', '.join(f'{c} {_fmt(d)}' for c, d in diffs) or '–'} | {tvds} |"
        )
    lines += [""]
    passed = "File-level audit passed: no generator separable on file-level features."
    lines += [f"- {p}" for p in audit["problems"]] or [passed]
    return lines
