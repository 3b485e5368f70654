import numpy as np
import pytest
import torch

from hrr_core.data.transforms import decode_image, encode_image, estimate_jpeg_quality, to_tensor, to_uint8


@pytest.mark.parametrize("quality", [30, 75, 90, 95, 100])
def test_jpeg_quality_estimate_is_exact_for_libjpeg(quality):
    arr = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    assert estimate_jpeg_quality(encode_image(arr, "jpeg", quality)) == quality


def test_png_round_trip_is_lossless_and_has_no_quality():
    arr = (np.random.default_rng(0).random((17, 23, 3)) * 255).astype(np.uint8)
    data = encode_image(arr, "png")
    assert (decode_image(data) == arr).all() and estimate_jpeg_quality(data) is None


def test_encode_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        encode_image(np.zeros((4, 4, 3), np.float32), "png")
    with pytest.raises(ValueError, match="codec"):
        encode_image(np.zeros((4, 4, 3), np.uint8), "gif")


def test_tensor_conversions_round_trip():
    arr = (np.random.default_rng(0).random((5, 7, 3)) * 255).astype(np.uint8)
    t = to_tensor(arr)
    assert t.shape == (3, 5, 7) and t.dtype == torch.float32
    assert float(t[0, 0, 0]) == pytest.approx(arr[0, 0, 0] / 255)  # channels first, scaled to [0, 1]
    assert (to_uint8(t) == arr).all()
