"""hrr_core.predict, the backward-compatible module: every old public name is the object of
the module it moved to (the behaviour is tested in test_card, test_inference, data/test_walk and
evaluation/test_calibration)."""

import hrr_core.predict as predict
from hrr_core import card, inference
from hrr_core.data import walk
from hrr_core.evaluation import calibration

OLD_CALLERS = ("CARD_FILE", "DetectorLoadError", "calibrate_threshold", "expand_inputs", "load_detector",
               "write_detector_card", "write_card_for_method")  # stages.py, study.py, notebooks/explore.ipynb


def test_old_names_are_the_new_objects():
    homes = (card, inference, walk, calibration)
    assert set(OLD_CALLERS) <= set(predict.__all__)
    for name in predict.__all__:
        owners = [m for m in homes if getattr(m, name, None) is getattr(predict, name)]
        assert owners, f"hrr_core.predict.{name} is not the object of its new module"
