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


def _fmt(x) -> str:
    return "–" if x is None or x != x else f"{x:.3f}"


def _pm(d: dict) -> str:
    return _fmt(d["mean"]) + ("" if d.get("std") is None else f" ± {d['std']:.3f}")


def _load(folder: Path) -> dict:
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


def _headline(studies: dict) -> list[str]:
    lines = [
        "### Headline: mean ± std over training seeds",
        "",
        "Macro means over test generators of each seed's model, then mean ± sample std over seeds (`study.seeds`; "
        "stage "
        "`study@<method>`, `metrics/study/<method>.json`).",
        "",
        "| method | trained on | seeds | mean AP | mean AUC | mean ACC | mean real-ACC | mean fake-ACC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, st in studies.items():
        h = st["headline"]
        seeds = str(len(st["seeds"])) if len(st["seeds"]) > 1 else "1 (deterministic fit)"
        lines.append(
            f"| {m} | {'+'.join(st['train_generators'])} | {seeds} | {_pm(h['ap'])} | {_pm(h['auc'])} | "
            f"{_pm(h['acc'])} | {_pm(h['real_acc'])} | {_pm(h['fake_acc'])} |"
        )
    return lines + [""]


def _main_run(evals: dict) -> list[str]:
    gens = sorted({g for e in evals.values() for g in e if isinstance(e[g], dict) and "ap" in e[g] and g != "mean"})
    lines = [
        "### Main run per test generator (seed `train.seed`)",
        "",
        "| method | trained on | mean ACC | mean real-ACC | mean fake-ACC | mean AP | mean AUC | "
        + " | ".join(f"AP {g}" for g in gens)
        + " |",
        "|---" * (7 + len(gens)) + "|",
    ]
    for method, e in evals.items():
        m = e["mean"]
        lines.append(
            f"| {method} | {'+'.join(e.get('train_generators', []))} | {_fmt(m['acc'])} | {_fmt(m['real_acc'])} | "
            f"{_fmt(m['fake_acc'])} | {_fmt(m['ap'])} | {_fmt(m['auc'])} | "
            + " | ".join(_fmt(e.get(g, {}).get("ap")) for g in gens)
            + " |"
        )
    return lines + [
        "",
        "Per-size numbers and 95% intervals: `results/<method>/results.csv`; `dvc metrics show` prints every figure.",
        "",
    ]


def _matrix(studies: dict) -> list[str]:
    gens = sorted({g for st in studies.values() for row in st["matrix"].values() for g in row if g != "mean"})
    lines = [
        "### Cross-generator matrix (AP; train on one family, test on each)",
        "",
        "| method | trained on | " + " | ".join(gens) + " | mean |",
        "|---" * (3 + len(gens)) + "|",
    ]
    for m, st in studies.items():
        for train, row in st["matrix"].items():
            lines.append(
                f"| {m} | {train} | " + " | ".join(_fmt(row.get(g)) for g in gens) + f" | {_fmt(row['mean'])} |"
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
        "### Robustness of the main model (mean AP over test generators)",
        "",
        f"Scored on a fixed stratified sample of the test split ({n_images} images; `study.max_images`), each "
        "condition "
        "applied identically to reals and fakes. ×f rescales to f × the stored size; down f shrinks by f and "
        "restores the "
        "size; *harmonised* resizes every image to one size and JPEG-encodes it (`study.robustness.harmonise_*`): the "
        "**bias-audit drop** is clean AP minus harmonised AP, what a size or format shortcut was worth.",
        "",
        "| method | " + " | ".join(names.get(c, c + " {}").format(lv) for c, lv in cols) + " | bias-audit drop (AP) |",
        "|---" * (2 + len(cols)) + "|",
    ]
    for m, st in studies.items():
        r = st["robustness"]
        lines.append(
            f"| {m} | "
            + " | ".join(_fmt(r.get(c, {}).get(lv, {}).get("ap")) for c, lv in cols)
            + f" | {_fmt(st.get('bias_audit_drop', {}).get('ap'))} |"
        )
    return lines + [""]


def _ablations(evals: dict, ablations: dict, trains: dict) -> list[str]:
    lines = [
        "### HRR ablations",
        "",
        "Each row changes one part of `methods.hrr` (`ablations:` in params.yaml); rows of "
        "`ablation_run` ran in this profile, the others are listed in `metrics/evaluate/ablation-*.json` as skipped. "
        "AFR dims kept: groups of AFR weights the sparsity penalty left non-zero.",
        "",
        "| row | mean ACC | mean AP | mean AUC | AFR dims kept |",
        "|---|---|---|---|---|",
    ]
    for name, key, e in [("full HRR", "hrr", evals["hrr"]), *((k, f"ablation-{k}", v) for k, v in ablations.items())]:
        afr = trains.get(key, {}).get("afr")
        kept = f"{afr['active_dims']}/{afr['dims']} (λ={afr['lambda_omega']:g})" if afr else "–"
        lines.append(
            f"| {name} | {_fmt(e['mean']['acc'])} | {_fmt(e['mean']['ap'])} | {_fmt(e['mean']['auc'])} | {kept} |"
        )
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
        "Fake = positive; ACC at threshold 0.5; means are macro-averages over test generators.",
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
    if studies:
        lines += _headline(studies)
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
