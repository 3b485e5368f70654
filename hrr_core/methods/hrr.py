"""HRR: multi-scale style retrospection (cached) + additive feature refinement, trained with
the HRR objective; its card carries the retrospection LDM when retrospection is on."""

from pathlib import Path

from hrr_core.confutil import set_optional_fields, to_dict
from hrr_core.losses.objective import HRRObjective
from hrr_core.methods import MethodSpec
from hrr_core.models.hrr import HRRDetector
from hrr_core.models.msr import minimum_input_size
from hrr_core.retrospection import msr_representation


def _ldm_dir(cfg, retrospection_ldm: Path) -> Path | None:
    return Path(retrospection_ldm) if cfg.msr.resolved().retrospection else None


def _train_report(model: HRRDetector, cfg) -> dict:
    """Which AFR dimensions survived the sparsity penalty (of the weights passed in); with any
    HRR v2 option set, also which ones (``kept_dims``, and ``kept_per_scale`` under concat
    fusion) and the v2 options in force (v1 configs keep exactly the v1 report)."""
    if getattr(model, "afr", None) is None:
        return {}
    report = {
        "active_dims": model.afr.active_dims(),
        "dims": int(model.afr.group_norms().numel()),
        "lambda_omega": float(cfg.objective.lambda_omega),
    }
    v2 = set_optional_fields(cfg)
    if v2:
        report.update({k: v for k, v in model.afr_report().items() if k not in report})
        report["v2_options"] = v2
    return {"afr": report}


def _card_preprocessing(cfg) -> dict:
    on = cfg.msr.resolved().retrospection
    return {
        "retrospection": {
            "on_the_fly": True,
            "msr": to_dict(cfg.msr),
            "uses_ldm": on,
            "ldm_dir": "retrospection_ldm" if on else None,
            "seed": "per image: hrr_core.io.image_seed(uint8 pixels, noise_seed), as the retrospect stage's cache",
        }
    }


SPEC = MethodSpec(
    name="hrr",
    build=HRRDetector,
    objective=lambda cfg: HRRObjective(cfg.objective),
    reads="msr",
    representation=lambda cfg, ldm: msr_representation(cfg.msr, ldm),
    ldm_dir=_ldm_dir,
    min_side=lambda cfg: minimum_input_size(cfg.msr.resolved()),
    train_report=_train_report,
    card_preprocessing=_card_preprocessing,
)
