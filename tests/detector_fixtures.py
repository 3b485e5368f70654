"""Builders shared by the detector tests (test_card, test_inference, test_cli, data/test_walk):
tiny checkpoints saved with their detector card (a classifier, and an HRR detector with a tiny
pixel LDM so retrospection runs on the fly) and a corpus of broken and unusual image files.
Load with ``importlib`` (see test_card.py); the test modules own the fixtures."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hrr_core.card import write_detector_card
from hrr_core.confutil import to_dict
from hrr_core.models.backbones import BackboneConfig
from hrr_core.models.classifier import BinaryClassifier, ClassifierConfig
from hrr_core.models.hrr import HRRConfig, HRRDetector
from hrr_core.models.ldm import LatentDiffusion, LDMConfig
from hrr_core.models.msr import MSRConfig
from hrr_core.training.checkpoint import save_checkpoint

TINY_BACKBONE = dict(name="small_resnet", pretrained=False, width=4)
TINY_MSR = MSRConfig(scale_factors=(1.0, 2.0), base_size=32, input_size=32, max_upscale=4.0, num_steps=1)
TINY_LDM = LDMConfig(space="pixel", norm_num_groups=4, unet_block_out_channels=(8, 8), max_train_timestep=300, seed=3)


# ---------------------------------------------------------------- tiny checkpoints


def write_card(model_dir: Path, method: str, kind: str, cfg, threshold=0.5, ldm_dir=None) -> Path:
    return write_detector_card(model_dir, method=method, kind=kind, baseline=None, model_config=to_dict(cfg),
                               train_generators=["tiny_gen"], profile="smoke", threshold=threshold,
                               val_metrics={"ap": 1.0}, data_summary={"n_train": 2, "n_val": 2},
                               retrospection_ldm_dir=ldm_dir)


def make_classifier_dir(root: Path) -> Path:
    """models/tiny_cnn: a BinaryClassifier on a width-4 small_resnet, best/ + detector.json."""
    torch.manual_seed(0)
    cfg = ClassifierConfig(backbone=BackboneConfig(**TINY_BACKBONE))
    model_dir = root / "tiny_cnn"
    save_checkpoint(model_dir / "best", BinaryClassifier(cfg).eval(), None, None, None, 0, 0, None, {"model": to_dict(cfg)})
    write_card(model_dir, "tiny_cnn", "classifier", cfg, threshold=0.45)
    return model_dir


def make_hrr_dir(root: Path) -> Path:
    """models/tiny_hrr: HRR over 2 scales with a tiny untrained pixel LDM copied into the folder."""
    torch.manual_seed(0)
    cfg = HRRConfig(backbone=BackboneConfig(**TINY_BACKBONE), msr=TINY_MSR)
    ldm_dir = LatentDiffusion.create(TINY_LDM).save(root / "retrospection_ldm")
    model_dir = root / "tiny_hrr"
    save_checkpoint(model_dir / "best", HRRDetector(cfg).eval(), None, None, None, 0, 0, None, {"model": to_dict(cfg)})
    write_card(model_dir, "tiny_hrr", "hrr", cfg, ldm_dir=ldm_dir)
    return model_dir


# ---------------------------------------------------------------- the bad-input corpus


def _rgb(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _encoded(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_bomb() -> bytes:
    """A valid PNG signature and IHDR claiming 100000 x 100000 pixels, and almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _frames(fmt: str) -> bytes:
    frames = [_rgb(40, 36, s) for s in range(3)]
    return _encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50, loop=0)


def make_corpus(folder: Path) -> dict[str, tuple[str, bool]]:
    """Build the corpus in ``folder``: name -> (path, should_predict). Sizes of the good images
    are >= 32 px so both tiny detectors can score them."""
    folder.mkdir(parents=True, exist_ok=True)
    cases: dict[str, tuple[str, bool]] = {}

    def put(name: str, data: bytes, ok: bool, fname: str | bytes | None = None) -> None:
        path = os.path.join(os.fsencode(folder), fname) if isinstance(fname, bytes) else folder / (fname or name)
        Path(os.fsdecode(path)).write_bytes(data)
        cases[name] = (os.fsdecode(path), ok)

    jpeg = _encoded(_rgb(48, 40, 1), "JPEG", quality=90)
    png = _encoded(_rgb(48, 40, 2), "PNG")
    put("empty.png", b"", False)
    put("truncated.jpg", jpeg[: len(jpeg) // 2], False)
    put("truncated.png", png[: len(png) // 2], False)
    put("random.jpg", np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes(), False)
    put("notes.txt", b"not an image, just text\n", False)
    put("bomb.png", _png_bomb(), False)
    put("one_pixel.png", _encoded(_rgb(1, 1), "PNG"), False)
    put("strip_1x4000.png", _encoded(_rgb(4000, 1), "PNG"), False)
    put("good.png", png, True)
    put("UPPER.JPG", jpeg, True)
    put("deep16.png", _encoded(Image.fromarray((np.arange(48 * 40).reshape(40, 48) * 30).astype(np.uint16)), "PNG"), True)
    put("cmyk.jpg", _encoded(_rgb(48, 40, 4).convert("CMYK"), "JPEG"), True)
    pal = _rgb(48, 40, 5).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    put("palette_transparent.png", _encoded(pal, "PNG", transparency=0), True)
    put("rgba.png", _encoded(_rgb(48, 40, 6).convert("RGBA"), "PNG"), True)
    put("grey.png", _encoded(_rgb(48, 40, 7).convert("L"), "PNG"), True)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    put("exif_rotated.jpg", _encoded(_rgb(48, 40, 8), "JPEG", exif=exif), True)
    put("animated.gif", _frames("GIF"), True)
    put("animated.webp", _frames("WEBP"), True)
    put("image.tiff", _encoded(_rgb(48, 40, 9), "TIFF"), True)
    put("non_utf8", png, True, fname=b"caf\xe9.png")
    put("locked.png", png, False)
    os.chmod(cases["locked.png"][0], 0)
    if os.access(cases["locked.png"][0], os.R_OK):  # root reads anything: then it is a good file
        cases["locked.png"] = (cases["locked.png"][0], True)
    (folder / "folder_named_x.png").mkdir()
    cases["folder_named_x.png"] = (str(folder / "folder_named_x.png"), False)
    os.symlink("loop.png", folder / "loop.png")
    cases["loop.png"] = (str(folder / "loop.png"), False)
    os.symlink("nowhere.png", folder / "dangling.png")
    cases["dangling.png"] = (str(folder / "dangling.png"), False)
    cases["missing.png"] = (str(folder / "missing.png"), False)
    return cases


def shown(path: str) -> str:
    """``path`` as the results and failures print it (non-UTF-8 bytes as ``\\xNN``)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
