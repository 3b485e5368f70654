"""Backbones: pretrained EfficientNet-Lite0, torchvision-format ResNets, SmallResNet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hrr_core.confutil import ConfigError, from_dict
from hrr_core.models.backbone_common import extend_input_conv
from hrr_core.models.backbones import BackboneConfig, build_backbone, count_parameters
from hrr_core.models.efficientnet import efficientnet_lite0
from hrr_core.models.resnet import ResNet

NAMES = ("efficientnet_lite0", "resnet18", "resnet50", "small_resnet")
FAST_NAMES = ("efficientnet_lite0", "resnet18", "small_resnet")  # resnet50 shares resnet18's code paths


def _cfg(name: str, **kw) -> BackboneConfig:
    return BackboneConfig(name=name, pretrained=kw.pop("pretrained", False), **kw)


@pytest.fixture(scope="module")
def imagenet_lite0() -> torch.nn.Module:
    return efficientnet_lite0(pretrained=True, num_classes=1000).eval()


def _center_crop_224(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, 224, 224) in [0, 1]: resize short side to 224, center crop."""
    im = Image.fromarray(image)
    scale = 224 / min(im.size)
    im = im.resize((round(im.width * scale), round(im.height * scale)), Image.BICUBIC)
    left, top = (im.width - 224) // 2, (im.height - 224) // 2
    im = im.crop((left, top, left + 224, top + 224))
    return torch.from_numpy(np.array(im)).permute(2, 0, 1).float().div(255).unsqueeze(0)


def test_lite0_package_weights_load_strictly_with_expected_sizes(imagenet_lite0):
    assert count_parameters(imagenet_lite0) == 4_652_008  # 1000-class head included
    backbone = build_backbone(BackboneConfig())  # pretrained, head dropped
    assert count_parameters(backbone) == 3_371_008 and backbone.out_dim == 1280
    torch.testing.assert_close(backbone._conv_stem.weight, imagenet_lite0._conv_stem.weight)


def test_lite0_classifies_sample_photos(imagenet_lite0):
    from skimage import data

    with torch.no_grad():
        cat = imagenet_lite0.classify(_center_crop_224(data.chelsea()))[0]
        coffee = imagenet_lite0.classify(_center_crop_224(data.coffee()))[0]
    assert 281 <= int(cat.argmax()) <= 285  # tabby / tiger cat / Persian / Siamese / Egyptian cat
    assert int(coffee.argmax()) in (967, 968, 504)  # espresso / cup / coffee mug


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(37, 91), (64, 64)])
def test_pooled_features_for_odd_sizes(name, size):
    model = build_backbone(_cfg(name)).eval()
    with torch.no_grad():
        feats = model(torch.rand(2, 3, *size))
        fmap = model.forward_features(torch.rand(1, 3, *size))
    assert feats.shape == (2, model.out_dim) and torch.isfinite(feats).all()
    assert fmap.shape[:2] == (1, model.out_dim)


def test_lite0_same_padding_matches_tensorflow_output_size():
    fmap = build_backbone(_cfg("efficientnet_lite0")).eval().forward_features(torch.rand(1, 3, 37, 91))
    assert fmap.shape == (1, 1280, 2, 3)  # ceil(37 / 32), ceil(91 / 32)


def test_extend_input_conv_keeps_rgb_and_repeats_scaled():
    w = torch.randn(8, 3, 3, 3)
    w6 = extend_input_conv(w, 6)
    assert w6.shape == (8, 6, 3, 3)
    torch.testing.assert_close(w6[:, :3], w)
    torch.testing.assert_close(w6[:, 3:], w * 0.5)


def _six_channel_pair(name: str, tmp_path) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A 3-channel model and a 6-channel model built from its weights (via a weights file)."""
    if name == "efficientnet_lite0":
        return (
            build_backbone(_cfg(name, pretrained=True)).eval(),
            build_backbone(_cfg(name, pretrained=True, in_channels=6)).eval(),
        )
    model3 = build_backbone(_cfg(name)).eval()
    for m in model3.modules():  # non-trivial BN statistics, so the check is not vacuous
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    path = tmp_path / "w3.pth"
    torch.save(model3.state_dict(), path)
    return model3, build_backbone(_cfg(name, pretrained=True, weights_path=str(path), in_channels=6)).eval()


@pytest.mark.parametrize("name", FAST_NAMES)
def test_six_channels_with_zero_extras_equal_three_channel_model(name, tmp_path):
    model3, model6 = _six_channel_pair(name, tmp_path)
    x = torch.rand(2, 3, 40, 40)
    with torch.no_grad():
        ref = model3(x)
        same = model6(torch.cat([x, torch.zeros_like(x)], dim=1))
        moved = model6(torch.cat([x, 0.1 * torch.randn_like(x)], dim=1))
    torch.testing.assert_close(same, ref, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(moved, ref, atol=1e-4)  # the extra channels are used


def test_wrong_channel_count_is_a_clear_error():
    model = build_backbone(_cfg("small_resnet"))
    with pytest.raises(ValueError, match="in_channels"):
        model(torch.rand(1, 6, 32, 32))


@pytest.mark.parametrize("name", FAST_NAMES)
def test_instance_norm_early_toggles(name):
    plain = build_backbone(_cfg(name)).eval()
    normed = build_backbone(_cfg(name, instance_norm_early=True)).eval()
    assert isinstance(normed.early_norm, torch.nn.InstanceNorm2d)
    assert isinstance(plain.early_norm, torch.nn.Identity)
    normed.load_state_dict(plain.state_dict())  # parameter-free: same keys either way
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        a, b = plain(x), normed(x)
    assert (a - b).norm() > 1e-3 * a.norm()  # relative: random-init Lite0 features are tiny at eval


# torchvision's names and shapes, written down from torchvision.models.resnet50() / resnet18().
TORCHVISION_RESNET50 = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.running_var": (64,),
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer1.0.downsample.1.running_mean": (256,),
    "layer2.0.conv2.weight": (128, 128, 3, 3),
    "layer3.5.bn3.weight": (1024,),
    "layer4.2.conv3.weight": (2048, 512, 1, 1),
    "fc.weight": (1000, 2048),
    "fc.bias": (1000,),
}
TORCHVISION_RESNET18 = {
    "layer1.1.conv2.weight": (64, 64, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "layer4.1.bn2.bias": (512,),
    "fc.weight": (1000, 512),
}


@pytest.mark.parametrize(
    "depth, sample, n_keys, n_params",
    [
        (50, TORCHVISION_RESNET50, 320, 25_557_032),
        (18, TORCHVISION_RESNET18, 122, 11_689_512),
    ],
)
def test_resnet_state_dict_is_torchvision_format(depth, sample, n_keys, n_params):
    model = ResNet(depth, num_classes=1000)
    sd = model.state_dict()
    assert len(sd) == n_keys and count_parameters(model) == n_params
    for key, shape in sample.items():
        assert tuple(sd[key].shape) == shape, key


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_resnet_loads_torchvision_file_strictly(suffix, tmp_path):
    source = ResNet(18, num_classes=1000).eval()
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".pth":
        torch.save(source.state_dict(), path)
    else:
        from safetensors.torch import save_file

        save_file(source.state_dict(), str(path))
    model = build_backbone(_cfg("resnet18", pretrained=True, weights_path=str(path))).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x))


def test_resnet_wrong_keys_give_a_clear_error(tmp_path):
    sd = ResNet(18, num_classes=1000).state_dict()
    sd["layer1.0.conv9.weight"] = sd.pop("layer1.0.conv1.weight")
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(
        ValueError, match=r"missing keys: layer1\.0\.conv1\.weight.*unexpected keys: layer1\.0\.conv9\.weight"
    ):
        build_backbone(_cfg("resnet18", pretrained=True, weights_path=str(path)))


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": Image.new("RGB", (1, 1))}, path)
    with pytest.raises(ValueError, match="weights-only"):
        build_backbone(_cfg("resnet18", pretrained=True, weights_path=str(path)))


def test_small_resnet_size():
    model = build_backbone(_cfg("small_resnet"))
    assert 300_000 <= count_parameters(model) <= 1_000_000 and model.out_dim == 192


def test_drop_rate_trains_and_is_identity_at_eval():
    model = build_backbone(_cfg("small_resnet", drop_rate=0.5))
    x = torch.rand(4, 3, 32, 32)
    model.train()(x).sum().backward()
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="weights_path"):
        BackboneConfig(name="resnet50", pretrained=True)
    with pytest.raises(ConfigError, match="in_channels"):
        from_dict(BackboneConfig, {"in_channels": 1})
    with pytest.raises(ConfigError, match="name"):
        from_dict(BackboneConfig, {"name": "vit"})
    cfg = from_dict(BackboneConfig, {"name": "small_resnet", "pretrained": False, "width": 16})
    assert build_backbone(cfg).out_dim == 128
