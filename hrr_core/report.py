"""The README's Results section, generated from the committed metrics (no hand-typed numbers).

    python -m hrr_core.report            # rewrite the section between the RESULTS markers
    python -m hrr_core.report --check    # exit 1 if README.md is out of date with metrics/

tests/test_repo.py runs the check, so the README can never drift from the metrics files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hrr_core.paths import project_root

START, END = "<!-- RESULTS:START -->", "<!-- RESULTS:END -->"
# (path, caption, the command that regenerates it)
FIGURES = [
    (
        "figures/metrics_per_generator.png",
        "ACC and AP per test generator, 95% bootstrap intervals",
        "dvc repro figures",
    ),
    (
        "figures/cross_generator.png",
        "cross-generator matrix: AP, trained on one family, tested on each",
        "dvc repro figures",
    ),
    (
        "figures/robustness.png",
        "robustness: rescaling, JPEG, blur, downscaling, and the bias audit",
        "dvc repro figures",
    ),
    ("figures/size.png", "accuracy by stored image size", "dvc repro figures"),
    ("figures/roc.png", "ROC per test generator", "dvc repro figures"),
    ("figures/pr.png", "precision-recall per test generator", "dvc repro figures"),
    ("figures/ablations.png", "HRR ablations", "dvc repro figures"),
    ("figures/afr_sparsity.png", "AFR sparsity against its weight", "dvc repro figures"),
    ("figures/residuals.png", "retrospection residual maps per scale, same content", "dvc repro figures"),
    ("figures/sample_grid.png", "the same content, real and every generator", "dvc repro prepare"),
    ("figures/training.png", "training curves", "dvc repro figures"),
]


# Baselines whose original relies on a pretrained model (or a design) that cannot be reproduced
# offline here: the README marks them "†" in every table; docs/baselines.md says what differs.
SUBSTITUTES = {
    "cnnspot": "EfficientNet-Lite0 instead of ResNet-50",
    "univfd": "EfficientNet-Lite0 features instead of CLIP ViT-L/14",
    "dire": "the project's pixel diffusion model instead of ADM",
    "aeroblade": "an autoencoder trained here and a Lite0 feature distance instead of Stable Diffusion's VAE and LPIPS",
    "bsf": "a seeded permutation of pixel values, our reading of the mapping",
    "freqnet": "the frequency input only, without FreqNet's in-network frequency layers",
    "selfdesc": "closed-form linear predictive filters and a Gaussian mixture instead of learned masked CNNs",
}
MARK = "†"


def _label(m: str) -> str:
    """A method's name in a table: substitutes marked."""
    return f"{m} {MARK}" if m in SUBSTITUTES else m


def _legend(names) -> list[str]:
    subs = [m for m in dict.fromkeys(names) if m in SUBSTITUTES]
    if not subs:
        return []
    what = "; ".join(f"{m}: {SUBSTITUTES[m]}" for m in subs)
    return [
        f"{MARK} substitute: the original's pretrained model or design cannot be had offline ({what}); "
        "`docs/baselines.md` says what is faithful and what differs for every method.",
        "",
    ]


def _fmt(x) -> str:
    return "–" if x is None or x != x else f"{x:.3f}"


def _pm(d: dict) -> str:
    return _fmt(d.get("mean")) + ("" if d.get("std") is None else f" ± {d['std']:.3f}")


def _load(folder: Path) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


def _ci(d: dict, k: str) -> str:
    lo_hi = d.get("ci", {}).get(k)
    return f"{_fmt(d['mean'].get(k))} [{_fmt(lo_hi[0])}, {_fmt(lo_hi[1])}]" if lo_hi else _fmt(d["mean"].get(k))


def _heldout_table(evals: dict) -> list[str]:
    v2 = {m: e for m, e in evals.items() if "heldout" in e}
    if not v2:
        return []
    fpr = next(iter(v2.values()))["thresholds"]["fpr_target"]
    lines = [
        "### Headline: held-out generators, thresholds calibrated on validation (main run, seed `train.seed`)",
        "",
        "Macro means over the test generators each detector did **not** train on (nor shares a model with: "
        "`ldm_sample` samples `ldm_img2img`'s model), 95% intervals from a bootstrap over source photos. ACC, "
        f"real-ACC and fake-ACC at the threshold that maximises balanced accuracy on validation; TPR at {fpr:.0%} "
        "FPR at the threshold that lets that share of validation reals through; ECE: expected calibration error of "
        "the scores; ACC@0.5 at the field's fixed threshold. In-family: the mean over the families it trained on.",
        "",
        "| method | trained on | held out | AP | AUC | ACC | real-ACC | fake-ACC | TPR@5%FPR | ECE | ACC@0.5 | "
        "in-family AP |",
        "|---" * 12 + "|",
    ]
    for m, e in v2.items():
        h, fam = e["heldout"], e["in_family"]
        lines.append(
            f"| {_label(m)} | {'+'.join(e.get('train_generators', []))} | {', '.join(h['families'])} | "
            f"{_ci(h, 'ap')} | "
            f"{_fmt(h['mean'].get('auc'))} | {_ci(h, 'acc')} | {_fmt(h['mean'].get('real_acc'))} | "
            f"{_fmt(h['mean'].get('fake_acc'))} | {_ci(h, 'tpr_at_fpr')} | {_fmt(h['mean'].get('ece'))} | "
            f"{_fmt(h['mean'].get('acc_at05'))} | {_fmt(fam.get('mean', {}).get('ap'))} |"
        )
    return lines + [""]


def _style_table(evals: dict) -> list[str]:
    v2 = {m: e["style_shift"] for m, e in evals.items() if "style_shift" in e}
    if not v2:
        return []
    first = next(iter(v2.values()))
    lines = [
        "### Style shift: held-out generators on photos of a collection no detector photo came from",
        "",
        f"Test photos of `{', '.join(first['collections'])}` ({first['heldout']['n_photos']} photos) are held out of "
        "train and val whole (`benchmark.style_shift`); the other test photos share collections with the training "
        f"photos ({first['heldout_in_style']['n_photos']} photos). Held-out macro means, 95% photo-level intervals.",
        "",
        "| method | style-shift AP | in-style AP | style-shift ACC | in-style ACC |",
        "|---|---|---|---|---|",
    ]
    for m, st in v2.items():
        a, b = st["heldout"], st["heldout_in_style"]
        lines.append(f"| {_label(m)} | {_ci(a, 'ap')} | {_ci(b, 'ap')} | {_ci(a, 'acc')} | {_ci(b, 'acc')} |")
    return lines + [""]


def _paired_table(compare: dict) -> list[str]:
    diffs = compare.get("differences", {})
    if not diffs:
        return []
    ref = compare["reference"]
    lines = [
        f"### Paired differences against {ref} (same test images, held-out generators)",
        "",
        f"Method minus {ref}, macro mean over the generators held out for both, with a paired bootstrap over "
        f"source photos ({compare['n_boot']} redraws; both methods redrawn alike). **Resolved** = the 95% interval "
        "excludes 0; otherwise the data cannot order the two.",
        "",
        "| method | ΔAP | ΔAUC | ΔACC | ΔTPR@5%FPR |",
        "|---|---|---|---|---|",
    ]

    def cell(d):
        mark = " **resolved**" if d["resolved"] else ""
        return f"{d['diff']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]{mark}"

    for m, d in diffs.items():
        lines.append(
            f"| {_label(m)} | {cell(d['ap'])} | {cell(d['auc'])} | {cell(d['acc'])} | {cell(d['tpr_at_fpr'])} |"
        )
    return lines + [""]


def _headline(studies: dict) -> list[str]:
    lines = [
        "### Seeds: held-out means ± std over training seeds",
        "",
        "Each seed's model: the macro mean over its held-out test generators at its own validation thresholds, "
        "then mean ± sample std over seeds (`study.seeds`; stage `study@<method>`, `metrics/study/<method>.json`).",
        "",
        "| method | trained on | seeds | AP | AUC | ACC | TPR@5%FPR | ACC@0.5 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, st in studies.items():
        h = st["headline"]
        seeds = str(len(st["seeds"])) if len(st["seeds"]) > 1 else "1 (deterministic fit)"
        lines.append(
            f"| {_label(m)} | {'+'.join(st['train_generators'])} | {seeds} | {_pm(h['ap'])} | {_pm(h['auc'])} | "
            f"{_pm(h['acc'])} | {_pm(h.get('tpr_at_fpr', {}))} | {_pm(h.get('acc_at05', {}))} |"
        )
    return lines + [""]


def _kfold(studies: dict) -> list[str]:
    rows = {m: st["kfold"] for m, st in studies.items() if "kfold" in st}
    if not rows:
        return []
    lines = [
        "### k-fold over photo groups: held-out means ± std over folds",
        "",
        "The detector photos (style-shift collections left out) re-split k ways, every photo a test photo of "
        "exactly one fold; each fold's model trained on its train folds and calibrated on its val fold "
        "(`study.folds`).",
        "",
        "| method | folds | AP | AUC | ACC | TPR@5%FPR |",
        "|---|---|---|---|---|---|",
    ]
    for m, k in rows.items():
        lines.append(
            f"| {_label(m)} | {k['folds']} | "
            + " | ".join(_pm(k[key]) for key in ("ap", "auc", "acc", "tpr_at_fpr"))
            + " |"
        )
    return lines + [""]


def _processed(studies: dict) -> list[str]:
    rows = {m: st["processed_reals"] for m, st in studies.items() if "processed_reals" in st}
    if not rows:
        return []
    conds = list(dict.fromkeys(c for p in rows.values() for c in p["conditions"]))
    n = sorted({p["n_reals"] for p in rows.values()})
    lines = [
        "### Processed reals stay real: false-positive rate at the calibrated threshold",
        "",
        f"Every test real ({', '.join(map(str, n))} images) as stored and after everyday processing "
        "(`evaluate.processed_reals`: JPEG, WebP, resize down and back up, unsharp-mask sharpening), still labelled "
        'real. A rate far above the clean one means the detector learned "processed = fake". 95% photo-level '
        "intervals.",
        "",
        "| method | " + " | ".join(conds) + " |",
        "|---" * (1 + len(conds)) + "|",
    ]
    for m, p in rows.items():
        c = p["conditions"]
        cells = [
            f"{_fmt(c[k]['fpr'])} [{_fmt(c[k]['ci'][0])}, {_fmt(c[k]['ci'][1])}]" if k in c else "–" for k in conds
        ]
        lines.append(f"| {_label(m)} | " + " | ".join(cells) + " |")
    return lines + [""]


def reading(evals: dict, compare: dict, studies: dict) -> list[str]:
    """The Results section's prose: every number in it is read from the metrics here."""
    v2 = {m: e for m, e in evals.items() if "heldout" in e and e["heldout"]["families"]}
    if not v2:
        return []
    ranked = sorted(v2, key=lambda m: -v2[m]["heldout"]["mean"]["ap"])
    best, worst = ranked[0], ranked[-1]
    b = v2[best]["heldout"]
    text = [
        "**Reading these numbers** (generated from the metrics by `hrr_core.report`). On the held-out generators "
        f"({', '.join(b['families'])}), {best} has the highest AP, {_ci(b, 'ap')}, and {worst} the lowest, "
        f"{_fmt(v2[worst]['heldout']['mean']['ap'])}; the ranking by AP is {', '.join(ranked)}."
    ]
    if "hrr" in v2:
        h = v2["hrr"]["heldout"]["mean"]
        text.append(
            f"HRR's held-out AP is {_fmt(h['ap'])} (rank {ranked.index('hrr') + 1} of {len(ranked)}); at its "
            f"calibrated threshold its real-ACC is {_fmt(h['real_acc'])} and fake-ACC {_fmt(h['fake_acc'])}, "
            f"and its TPR at 5% FPR is {_fmt(h['tpr_at_fpr'])}."
        )
    diffs = compare.get("differences", {})
    if diffs:
        ref = compare["reference"]
        better = [m for m, d in diffs.items() if d["ap"]["resolved"] and d["ap"]["diff"] > 0]
        worse = [m for m, d in diffs.items() if d["ap"]["resolved"] and d["ap"]["diff"] < 0]
        open_ = [m for m, d in diffs.items() if not d["ap"]["resolved"]]
        text.append(
            f"Against {ref} on the same images, the paired photo-level interval of ΔAP resolves "
            f"{len(better) + len(worse)} of {len(diffs)} differences: better than {ref}: "
            f"{', '.join(better) or 'none'}; worse: {', '.join(worse) or 'none'}; not resolved by the data: "
            f"{', '.join(open_) or 'none'}."
        )
    if studies:
        std = [st["headline"]["ap"]["std"] for st in studies.values() if st["headline"]["ap"].get("std") is not None]
        if std:
            text.append(f"Across training seeds the held-out AP moves by a std of {min(std):.3f} to {max(std):.3f}.")
    return [" ".join(text), ""]


def _main_run(evals: dict) -> list[str]:
    gens = sorted({g for e in evals.values() for g in e if isinstance(e[g], dict) and "ap" in e[g] and g != "mean"})
    lines = [
        "### Main run per test generator (AP; seed `train.seed`; *in italics*: in-family)",
        "",
        "| method | trained on | " + " | ".join(gens) + " |",
        "|---" * (2 + len(gens)) + "|",
    ]
    for method, e in evals.items():
        inside = set(e.get("in_family_generators", []))
        cells = [f"*{_fmt(e.get(g, {}).get('ap'))}*" if g in inside else _fmt(e.get(g, {}).get("ap")) for g in gens]
        lines.append(f"| {_label(method)} | {'+'.join(e.get('train_generators', []))} | " + " | ".join(cells) + " |")
    return lines + [
        "",
        "Per-size and per-photo-set numbers with 95% intervals: `results/<method>/results.csv`; `dvc metrics show` "
        "prints every figure.",
        "",
    ]


def _matrix(studies: dict) -> list[str]:
    gens = sorted({g for st in studies.values() for row in st["matrix"].values() for g in row if g != "mean"})
    lines = [
        "### Cross-generator matrix (AP; train on one family, test on each; mean over the held-out ones)",
        "",
        "| method | trained on | " + " | ".join(gens) + " | mean |",
        "|---" * (3 + len(gens)) + "|",
    ]
    for m, st in studies.items():
        for train, row in st["matrix"].items():
            lines.append(
                f"| {_label(m)} | {train} | "
                + " | ".join(_fmt(row.get(g)) for g in gens)
                + f" | {_fmt(row.get('mean'))} |"
            )
    return lines + [""]


def _robustness(studies: dict, n_images) -> list[str]:
    cols = []
    for st in studies.values():
        for cond, levels in st["robustness"].items():
            cols += [(cond, lv) for lv in levels if (cond, lv) not in cols]
    order = {"clean": 0, "rescale": 1, "jpeg": 2, "blur": 3, "downscale": 4, "harmonise": 5}
    cols.sort(key=lambda c: (order.get(c[0], 9), -float(c[1]) if c[0] == "jpeg" else float(c[1])))
    names = {
        "clean": "clean",
        "rescale": "×{}",
        "jpeg": "JPEG {}",
        "blur": "blur σ{}",
        "downscale": "down {}",
        "harmonise": "harmonised {}px",
    }
    lines = [
        "### Robustness of the main model (mean AP over held-out test generators)",
        "",
        f"Scored on a fixed sample of the test split ({n_images} images: `study.per_cell` reals and as many fakes "
        "of each generator, spread over the sizes), each condition applied identically to reals and fakes. "
        "×f rescales to f × the stored size; down f shrinks by f and restores the size; *harmonised* resizes "
        "every image to one size and JPEG-encodes it (`study.robustness.harmonise_*`): the "
        "**bias-audit drop** is clean AP minus harmonised AP, what a size or format shortcut was worth.",
        "",
        "| method | " + " | ".join(names.get(c, c + " {}").format(lv) for c, lv in cols) + " | bias-audit drop (AP) |",
        "|---" * (2 + len(cols)) + "|",
    ]
    for m, st in studies.items():
        r = st["robustness"]
        lines.append(
            f"| {_label(m)} | "
            + " | ".join(_fmt(r.get(c, {}).get(lv, {}).get("ap")) for c, lv in cols)
            + f" | {_fmt(st.get('bias_audit_drop', {}).get('ap'))} |"
        )
    return lines + [""]


def _ablations(evals: dict, ablations: dict, trains: dict) -> list[str]:
    lines = [
        "### HRR ablations",
        "",
        "Each row changes one part of `methods.hrr` (`ablations:` in params.yaml), means over held-out generators, "
        "ACC at the calibrated threshold; rows of "
        "`ablation_run` ran in this profile, the others are listed in `metrics/evaluate/ablation-*.json` as skipped. "
        "AFR dims kept: groups of AFR weights the sparsity penalty left non-zero.",
        "",
        "| row | mean ACC | mean AP | mean AUC | AFR dims kept |",
        "|---|---|---|---|---|",
    ]
    for name, key, e in [("full HRR", "hrr", evals["hrr"]), *((k, f"ablation-{k}", v) for k, v in ablations.items())]:
        afr = trains.get(key, {}).get("afr")
        kept = f"{afr['active_dims']}/{afr['dims']} (λ={afr['lambda_omega']:g})" if afr else "–"
        mean = e.get("heldout", {}).get("mean") or e["mean"]
        lines.append(f"| {name} | {_fmt(mean['acc'])} | {_fmt(mean['ap'])} | {_fmt(mean['auc'])} | {kept} |")
    return lines + [""]


def render_results(root: Path) -> str:
    """Markdown for the Results section from ``metrics/`` (empty note when nothing ran yet)."""
    evals = _load(root / "metrics" / "evaluate")
    ablations = {k.removeprefix("ablation-"): v for k, v in evals.items() if k.startswith("ablation-") and "mean" in v}
    evals = {k: v for k, v in evals.items() if not k.startswith("ablation-")}
    studies = {k: v for k, v in _load(root / "metrics" / "study").items() if k in evals}
    if not evals:
        return "_No results yet: run `dvc repro`, then `python -m hrr_core.report`._"
    profile = sorted({e.get("profile", "?") for e in [*evals.values(), *studies.values()]})
    lines = [
        "## Results",
        "",
        f"Embedded benchmark, every number below from profile `{', '.join(profile)}` (`dvc repro` on a 2-core CPU; the "
        "`full` profile runs every seed, family, condition and ablation and is meant for a GPU). Generated by "
        "`python -m hrr_core.report` from `metrics/`; regenerate with `dvc repro && python -m hrr_core.report`. "
        "Fake = positive; means are macro-averages over test generators; the protocol is docs/evaluation.md.",
        "",
    ]
    prep = root / "metrics" / "prepare.json"
    if prep.exists():
        p = json.loads(prep.read_text())
        lines += [
            f"Data: {p['real']} real and {p['fake']} generated images from {sum(p['photos'].values())} photo groups "
            f"(train/val/test {p['photos']['train']}/{p['photos']['val']}/{p['photos']['test']}); bias audit "
            f"{'passed' if p['bias_audit_ok'] else 'FAILED'}. Per-family difficulty is in `reports/dataset_card.md`.",
            "",
        ]
    compare = json.loads(cmp.read_text()) if (cmp := root / "metrics" / "compare.json").is_file() else {}
    lines += reading(evals, compare, studies) + _legend([*evals, *studies])
    lines += _heldout_table(evals) + _paired_table(compare) + _style_table(evals)
    if studies:
        lines += _headline(studies) + _kfold(studies) + _processed(studies)
    lines += _main_run(evals)
    if studies:
        sizes = {st.get("robustness_images") for st in studies.values()}
        lines += _matrix(studies) + _robustness(studies, ", ".join(str(s) for s in sorted(sizes, key=str)))
    if ablations and "hrr" in evals:
        lines += _ablations(evals, ablations, _load(root / "metrics" / "train"))
    lines += [f"![{cap}]({path})\n*{cap}* (`{cmd}`)\n" for path, cap, cmd in FIGURES if (root / path).exists()]
    return "\n".join(lines)


def update_readme(readme: Path, section: str) -> tuple[str, str]:
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} markers; add them where the Results section belongs")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return text, f"{head}{START}\n{section}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hrr_core.report", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that README.md is up to date")
    args = parser.parse_args(argv)
    root = project_root()
    old, new = update_readme(root / "README.md", render_results(root))
    if args.check:
        if old != new:
            print("README.md's Results section is out of date with metrics/: run python -m hrr_core.report")
            return 1
        return 0
    (root / "README.md").write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
