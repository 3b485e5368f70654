"""check_above_chance: refuses a validation AP at or below the positive rate (+ margin)."""

from __future__ import annotations

import pytest

from hrr_core.evaluation.sanity import check_above_chance


def test_passes_above_chance_and_names_the_method_below():
    labels = [0, 0, 0, 1]  # chance AP = 0.25
    check_above_chance("npr", 0.30, labels)
    with pytest.raises(ValueError, match=r"aeroblade: validation AP 0.430 is at or below chance \(0.500"):
        check_above_chance("aeroblade", 0.43, [0, 1])
    with pytest.raises(ValueError, match="sign"):
        check_above_chance("npr", 0.26, labels)  # inside the margin
    with pytest.raises(ValueError, match="both classes"):
        check_above_chance("npr", 0.9, [1, 1])
    with pytest.raises(ValueError, match="NaN"):
        check_above_chance("npr", float("nan"), labels)
