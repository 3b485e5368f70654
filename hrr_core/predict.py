"""Backward-compatible names for code written before the split (the detector card, inference,
calibration and input walking now live in their own modules); import from those instead:

- :mod:`hrr_core.card`: ``detector.json``, writing and checking it;
- :mod:`hrr_core.inference`: :class:`Detector`, :func:`load_detector`, ``predict_paths``;
- :mod:`hrr_core.evaluation.calibration`: :func:`calibrate_threshold`;
- :mod:`hrr_core.data.walk`: :func:`expand_inputs` (hrr-detect's files, folders and globs).
"""

from hrr_core.card import (CARD_FILE, CARD_FORMAT, CARD_VERSION, LDM_DIR, DetectorLoadError, read_card,
                           write_card_for_method, write_detector_card)
from hrr_core.data.walk import INPUT_EXTENSIONS, display_path, expand_inputs
from hrr_core.evaluation.calibration import calibrate_threshold
from hrr_core.inference import Detector, PredictionReport, load_detector

__all__ = ["CARD_FILE", "CARD_FORMAT", "CARD_VERSION", "INPUT_EXTENSIONS", "LDM_DIR", "Detector", "DetectorLoadError",
           "PredictionReport", "calibrate_threshold", "display_path", "expand_inputs", "load_detector", "read_card",
           "write_card_for_method", "write_detector_card"]
