"""``evaluate:`` and ``study:``: how test sets are scored, and what the study adds to one run."""

from __future__ import annotations

from dataclasses import dataclass, field

from hrr_core.confutil import check

CONDITIONS = ("clean", "rescale", "jpeg", "blur", "downscale", "harmonise")


@dataclass(frozen=True)
class RobustnessConfig:
    """``study.robustness:``: which conditions the study scores the trained detector under.
    Empty lists skip a condition; ``harmonise_size: null`` skips the bias-audit condition."""

    rescale: tuple[float, ...] = (0.5, 2.0)
    jpeg: tuple[int, ...] = (60,)
    blur: tuple[float, ...] = (1.0,)
    downscale: tuple[float, ...] = ()
    harmonise_size: int | None = 64
    harmonise_quality: int = 90

    def __post_init__(self) -> None:
        check(all(0.1 <= f <= 4.0 for f in self.rescale), "rescale", "factors in [0.1, 4]", self.rescale)
        check(all(1 <= q <= 100 for q in self.jpeg), "jpeg", "qualities in 1..100", self.jpeg)
        check(all(0 <= s <= 16 for s in self.blur), "blur", "sigmas in [0, 16] pixels", self.blur)
        check(all(0.05 <= f < 1.0 for f in self.downscale), "downscale", "factors in [0.05, 1)", self.downscale)
        check(
            self.harmonise_size is None or self.harmonise_size >= 8,
            "harmonise_size",
            ">= 8 pixels or null",
            self.harmonise_size,
        )
        check(1 <= self.harmonise_quality <= 100, "harmonise_quality", "1..100", self.harmonise_quality)

    def conditions(self) -> list[tuple[str, float]]:
        """(condition, level) pairs, the unperturbed reference ('clean', 0) first."""
        out = [("clean", 0.0)]
        out += [("rescale", float(f)) for f in self.rescale if f != 1.0]
        out += [("jpeg", float(q)) for q in self.jpeg]
        out += [("blur", float(s)) for s in self.blur if s != 0]
        out += [("downscale", float(f)) for f in self.downscale]
        if self.harmonise_size is not None:
            out.append(("harmonise", float(self.harmonise_size)))
        return out


PROCESSINGS = ("jpeg", "webp", "resize", "sharpen")


@dataclass(frozen=True)
class ProcessedRealsConfig:
    """``evaluate.processed_reals:``: everyday processing applied to the test REALS, which stay
    labelled real; their false-positive rate at the calibrated threshold shows a detector that
    learned "processed = fake". Empty lists skip a processing."""

    jpeg: tuple[int, ...] = (50,)  # JPEG quality
    webp: tuple[int, ...] = (50,)  # WebP quality
    resize: tuple[float, ...] = (0.5,)  # down by the factor and back up (bicubic)
    sharpen: tuple[float, ...] = (1.0,)  # unsharp-mask amount (radius 2 px)

    def __post_init__(self) -> None:
        check(all(1 <= q <= 100 for q in self.jpeg), "jpeg", "qualities in 1..100", self.jpeg)
        check(all(1 <= q <= 100 for q in self.webp), "webp", "qualities in 1..100", self.webp)
        check(all(0.1 <= f < 1.0 for f in self.resize), "resize", "factors in [0.1, 1)", self.resize)
        check(all(0 < a <= 5 for a in self.sharpen), "sharpen", "amounts in (0, 5]", self.sharpen)

    def conditions(self) -> list[tuple[str, float]]:
        """(processing, level) pairs in a fixed order."""
        return [(name, float(level)) for name in PROCESSINGS for level in getattr(self, name)]


@dataclass(frozen=True)
class EvaluateConfig:
    """``evaluate:``: how test sets are scored. The decision threshold of every headline
    number is calibrated on validation (the detector card's); ``threshold`` is the fixed
    secondary one (ACC@0.5). Intervals resample source photos (cluster bootstrap)."""

    threshold: float = 0.5
    n_boot: int = 200
    by_size: bool = True
    batch_size: int = 64
    fpr_target: float = 0.05  # TPR at this false-positive rate, its threshold from validation reals
    ece_bins: int = 10  # expected calibration error: equal-width probability bins
    reference: str | None = "hrr"  # paired photo-level differences of every method against this one
    processed_reals: ProcessedRealsConfig = field(default_factory=ProcessedRealsConfig)

    def __post_init__(self) -> None:
        check(0.0 < self.threshold < 1.0, "threshold", "a probability in (0, 1)", self.threshold)
        check(self.n_boot >= 0, "n_boot", ">= 0 (0 disables intervals)", self.n_boot)
        check(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        check(0.0 < self.fpr_target < 0.5, "fpr_target", "a rate in (0, 0.5)", self.fpr_target)
        check(2 <= self.ece_bins <= 100, "ece_bins", "2..100", self.ece_bins)


@dataclass(frozen=True)
class StudyConfig:
    """``study:``: what stage ``study@<method>`` adds to the main train/evaluate run: more
    training seeds (the headline's mean ± std), a cross-generator matrix (train on each family
    of ``cross_train`` alone, test on all) and test-time robustness of the main model on a
    fixed sample of the test split (``per_cell`` images of each class and generator; null = all
    of it). ``folds`` > 1 adds k-fold over photo groups: every detector photo outside the
    style-shift collections is a test photo of exactly one fold (0 = off)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    cross_train: tuple[str, ...] = ("ldm_img2img", "gan_upsampler")
    per_cell: int | None = 100
    folds: int = 0
    robustness: RobustnessConfig = field(default_factory=RobustnessConfig)

    def __post_init__(self) -> None:
        check(
            len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds) and min(self.seeds) >= 0,
            "seeds",
            "distinct seeds >= 0, at least one (three or more for a mean ± std)",
            self.seeds,
        )
        check(len(set(self.cross_train)) == len(self.cross_train), "cross_train", "distinct families", self.cross_train)
        check(
            self.per_cell is None or self.per_cell >= 4,
            "per_cell",
            ">= 4 or null (all test images); the default profile keeps 100 (the protocol's floor)",
            self.per_cell,
        )
        check(self.folds == 0 or self.folds >= 3, "folds", "0 (off) or >= 3 (test, val and train folds)", self.folds)
