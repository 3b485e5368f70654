"""hrr_core.evaluation.calibration: the validation threshold, on hand-made score sets."""

import pytest

from hrr_core.evaluation.calibration import calibrate_threshold


def test_calibrate_threshold_hand_made():
    # separable with 0.5 in the perfect interval (0.3, 0.6]: keep 0.5
    assert calibrate_threshold([0.1, 0.2, 0.3, 0.6, 0.7, 0.8], [0, 0, 0, 1, 1, 1]) == 0.5
    # an over-confident detector: every score above 0.5; the perfect interval is (0.75, 0.9]
    assert calibrate_threshold([0.7, 0.75, 0.9, 0.95], [0, 0, 1, 1]) == pytest.approx(0.825)
    # an under-confident one: perfect interval (0.1, 0.2] -> its midpoint
    assert calibrate_threshold([0.05, 0.1, 0.2, 0.3], [0, 0, 1, 1]) == pytest.approx(0.15)
    # imbalanced: 1 real, 4 fakes; balanced accuracy, not accuracy, decides
    assert calibrate_threshold([0.2, 0.4, 0.45, 0.46, 0.9], [1, 0, 1, 1, 1]) == pytest.approx(0.425)
    # ties: three intervals reach balanced accuracy 0.5; the one holding 0.5 wins
    assert calibrate_threshold([0.1, 0.2, 0.8, 0.9], [1, 0, 1, 0]) == 0.5
    # every score >= 0.5: "all generated" (0.5 works) ties with "all real" (midpoint 0.9)
    assert calibrate_threshold([0.6, 0.7, 0.8], [1, 1, 0]) == 0.5
    assert calibrate_threshold([0.2, 1.0], [0, 1]) == 0.5 and calibrate_threshold([1.0, 1.0, 0.9], [0, 0, 1]) <= 0.9
    for scores, labels in (([0.1, 0.2], [0, 0]), ([], []), ([0.1, 1.2], [0, 1]), ([0.1], [0, 1])):
        with pytest.raises(ValueError):
            calibrate_threshold(scores, labels)
