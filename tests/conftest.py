"""Fixtures shared by test modules (test modules cannot import conftest; helpers reach them as fixtures).

- ``one_thread``: opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
- ``make_params`` / ``tiny_params`` / ``tiny_config``: a small, complete study config built from a dict, so that
  unit tests never read the production ``params.yaml`` (tuning the experiment breaks none of them).
- ``fx``: builders of tiny benchmark trees (8-32 px images) in each real layout and of bad files.
- ``tiny_models`` / ``corpus`` / ``detectors``: tiny saved detectors, their builders, and a corpus of broken
  and unusual files.
- ``smoke_repo``: the expensive one: a fresh git + DVC copy of the working tree after one ``dvc repro`` on the
  smoke profile. Session-scoped, so the pipeline, experiment and browser tests pay for one smoke run together;
  tests that change a repository work on :meth:`SmokeRepo.copy_to`, never on the shared one.
"""

from __future__ import annotations

import copy
import hashlib
import io
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
GENERATED = ("dvc.lock", "metrics", "figures", "reports", "plots")  # a fresh copy starts from none of them


@pytest.fixture()
def one_thread():
    """Tiny tensors: one thread is faster than several on a shared, busy CPU."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ---------------------------------------------------------------- a tiny study config

SMALL_BACKBONE = {"name": "small_resnet", "pretrained": False, "width": 8}
TINY_PARAMS = {  # the smoke profile's sizes, with three cheap methods and no ablations; unset keys: dataclass defaults
    "profile": "smoke",
    "seed": 0,
    "device": "cpu",
    "benchmark": {
        "max_photos": 9,
        "crop_sizes": [64, 96],
        "crops_per_size": 2,
        "gen_train_crops": 32,
        "batch_size": 16,
    },
    "zoo": {
        "vae": {
            "ldm": {
                "vae_block_out_channels": [8, 8],
                "vae_latent_channels": 4,
                "vae_steps": 3,
                "norm_num_groups": 4,
                "unet_block_out_channels": [4],
                "train_crop": 16,
                "vae_batch_size": 4,
            },
            "adv_start": 1,
        },
        "ldm_img2img": {
            "ldm": {
                "vae_block_out_channels": [8, 8],
                "unet_block_out_channels": [8, 8],
                "vae_steps": 3,
                "unet_steps": 3,
                "norm_num_groups": 4,
                "train_crop": 16,
                "vae_batch_size": 4,
                "unet_batch_size": 4,
            },
            "adv_start": 1,
            "ddim_steps": 2,
        },
        "pixel_ddpm": {
            "ldm": {
                "unet_block_out_channels": [8, 8],
                "unet_steps": 3,
                "norm_num_groups": 4,
                "train_crop": 16,
                "unet_batch_size": 4,
            },
            "ddim_steps": 2,
        },
        "gan_upsampler": {
            "width": 8,
            "num_blocks": 1,
            "disc_width": 8,
            "steps": 3,
            "adv_start": 1,
            "crop": 16,
            "batch_size": 4,
        },
        "ldm_sample": {"ddim_steps": 2},
    },
    "train": {
        "epochs": 1,
        "batch_size": 8,
        "max_steps": 4,
        "warmup_steps": 0,
        "log_every_steps": 1,
        "require_above_chance": False,
    },  # 4 steps need not beat chance
    "evaluate": {"n_boot": 5},
    "study": {
        "seeds": [0, 1],
        "cross_train": ["ldm_img2img", "pixel_ddpm"],
        "per_cell": 4,
        "robustness": {"rescale": [0.5], "jpeg": [50], "blur": [1.0], "downscale": [0.5]},
    },
    "retrospection": {
        "ldm": {
            "unet_block_out_channels": [8, 8],
            "norm_num_groups": 4,
            "unet_steps": 3,
            "train_crop": 16,
            "unet_batch_size": 4,
        },
    },
    "methods": {
        "cnn": {
            "kind": "classifier",
            "train_generators": ["ldm_img2img"],
            "model": {"backbone": SMALL_BACKBONE, "dropout": 0.0},
        },
        "spectrum_lr": {
            "kind": "baseline",
            "baseline": "spectrum_lr",
            "train_generators": ["ldm_img2img"],
            "model": {"dct": True, "C": 1.0},
        },
        "hrr": {
            "kind": "hrr",
            "train_generators": ["ldm_img2img"],
            "model": {
                "backbone": {**SMALL_BACKBONE, "in_channels": 6},
                "msr": {
                    "scale_factors": [1.0, 1.5, 2.0],
                    "base_size": 64,
                    "input_size": 64,
                    "noise": True,
                    "noise_std": 0.01,
                    "line_enhancement": True,
                    "line_beta": 0.2,
                    "retrospection": True,
                    "strength": 0.2,
                    "num_steps": 1,
                    "representation": "residual+image",
                },
                "afr": {"enabled": True, "num_anchors": 4, "rho": 0.5},
                "objective": {
                    "afr_loss": "correntropy",
                    "sigma": 2.0,
                    "kl": True,
                    "lambda_kl": 0.5,
                    "lambda_ce": 0.5,
                    "lambda_omega": 1.0,
                },
                "fusion": "mean",
            },
        },
    },
}


@pytest.fixture(scope="session")
def make_params():
    """``make_params(**sections)``: a fresh copy of :data:`TINY_PARAMS` (a params.yaml-shaped
    dict) with ``sections`` deep-merged over it; session-scoped, so module fixtures can use it."""
    from hrr_core.confutil import deep_merge

    return lambda **sections: deep_merge(copy.deepcopy(TINY_PARAMS), sections)


@pytest.fixture()
def tiny_params(make_params) -> dict:
    return make_params()


@pytest.fixture()
def tiny_config(make_params):
    """:data:`TINY_PARAMS` as the typed, validated study config."""
    from hrr_core.schema import config_from_dict

    return config_from_dict(make_params())


# ---------------------------------------------------------------- tiny benchmark trees and bad files

_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF"}


def write_image(path: str | Path, size: tuple[int, int] = (16, 16), exif: bool = False) -> Path:
    """A small noise image, encoded by the file's extension (case-insensitive)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seed = int.from_bytes(hashlib.sha1(path.as_posix().encode()).digest()[:4], "big")
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    im = Image.fromarray(arr, "RGB")
    fmt = _FORMATS[path.suffix.lower()]
    kwargs = {}
    if exif and fmt == "JPEG":
        ex = Image.Exif()
        ex[0x010F] = "FixtureCam"  # Make
        kwargs["exif"] = ex.tobytes()
    im.save(path, fmt, **kwargs)
    return path


def write_empty(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_corrupt(path: str | Path) -> Path:
    """Bytes that no image decoder accepts, under an image extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not an image" * 8)
    return path


def write_truncated_png(path: str | Path, size: tuple[int, int] = (32, 32)) -> Path:
    """A PNG whose header is intact but whose pixel data is cut short."""
    path = Path(path)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    data = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


def _fill(folder: Path, n: int, ext: str, size: tuple[int, int], stem: str = "{i:05d}") -> None:
    for i in range(n):
        write_image(folder / (stem.format(i=i) + ext), size)


def make_forensynths(root: str | Path, classes=("car", "cat", "chair", "horse", "dog"), n: int = 2) -> None:
    """train/val ``<class>/{0_real,1_fake}``; test progan and stylegan per class, biggan flat.
    Reals .png 24 px, fakes .png 16 px; test/biggan/1_fake also holds one empty and one
    corrupt file, and every folder holds a non-image ``notes.txt``."""
    root = Path(root)
    for group in ("train", "val"):
        for c in classes:
            _fill(root / group / c / "0_real", n, ".png", (24, 24))
            _fill(root / group / c / "1_fake", n, ".png", (16, 16))
    for gen in ("progan", "stylegan"):
        for c in classes[:2]:
            _fill(root / "test" / gen / c / "0_real", n, ".png", (24, 24))
            _fill(root / "test" / gen / c / "1_fake", n, ".png", (16, 16))
    _fill(root / "test" / "biggan" / "0_real", n, ".JPEG", (24, 24))
    _fill(root / "test" / "biggan" / "1_fake", n, ".png", (16, 16))
    write_empty(root / "test" / "biggan" / "1_fake" / "empty.png")
    write_corrupt(root / "test" / "biggan" / "1_fake" / "corrupt.jpg")
    (root / "test" / "biggan" / "1_fake" / "notes.txt").write_text("not an image")


def make_diffusionforensics(root: str | Path, n: int = 2, trees=("images", "recons")) -> None:
    """``<tree>/{train,val,test}/lsun_bedroom/{real,adm,ddpm}`` and ``imagenet/{real,adm}``
    (test also ``celebahq/{real,sdv2}``); reals .jpg 24 px, fakes .png 16 px."""
    root = Path(root)
    for tree in trees:
        for group in ("train", "val", "test"):
            layout = {"lsun_bedroom": ("real", "adm", "ddpm"), "imagenet": ("real", "adm")}
            if group == "test":
                layout["celebahq"] = ("real", "sdv2")
            for dataset, gens in layout.items():
                for gen in gens:
                    ext, size = (".jpg", (24, 24)) if gen == "real" else (".png", (16, 16))
                    _fill(root / tree / group / dataset / gen, n, ext, size)


def make_genimage(root: str | Path, n: int = 20) -> None:
    """sdv4 inside its release wrapper, adm bare; nature .JPEG (ImageNet names) 24 px,
    ai .png 16 px (sdv4) / 32 px (adm); adm/val/ai holds one empty and one corrupt file."""
    root = Path(root)
    for base, gen in (
        (root / "stable_diffusion_v_1_4" / "imagenet_ai_0419_sdv4", "sdv4"),
        (root / "imagenet_ai_0508_adm", "adm"),
    ):
        fake_size = (16, 16) if gen == "sdv4" else (32, 32)
        _fill(base / "train" / "nature", n, ".JPEG", (24, 24), "n01440764_{i}")
        _fill(base / "train" / "ai", n, ".png", fake_size, "000_" + gen + "_{i:05d}")
        _fill(base / "val" / "nature", n // 4, ".JPEG", (24, 24), "ILSVRC2012_val_{i:08d}")
        _fill(base / "val" / "ai", n // 4, ".png", fake_size, "001_" + gen + "_{i:05d}")
    write_empty(root / "imagenet_ai_0508_adm" / "val" / "ai" / "zero.png")
    write_corrupt(root / "imagenet_ai_0508_adm" / "val" / "ai" / "broken.PNG")


def make_cocofake(root: str | Path, train_ids=range(1, 13), val_ids=range(100, 124), fakes_per_id: int = 5) -> None:
    """real/{train2014,val2014}/COCO_<split>_<12-digit id>.jpg (24 px) and
    fake/{train2014,val2014}/<id>/<id>_<k>.png (16 px). Extra cases: the last train id has
    no fakes; a fake folder 999999 has no real; the fakes of id 101 are all empty files."""
    root = Path(root)
    for group, ids in (("train2014", list(train_ids)), ("val2014", list(val_ids))):
        for cid in ids:
            write_image(root / "real" / group / f"COCO_{group}_{cid:012d}.jpg", (24, 24))
            if group == "train2014" and cid == ids[-1]:
                continue
            for k in range(fakes_per_id):
                write_image(root / "fake" / group / str(cid) / f"{cid}_{k}.png", (16, 16))
    for k in range(fakes_per_id):
        write_image(root / "fake" / "val2014" / "999999" / f"999999_{k}.png", (16, 16))
    if 101 in val_ids:
        for k in range(fakes_per_id):
            write_empty(root / "fake" / "val2014" / "101" / f"101_{k}.png")


def make_folder_tree(root: str | Path, n: int = 3) -> None:
    """train/{real,fake}; test/sdxl/{0_real,1_fake}; test/flux/faces/{real,fake} (webp)."""
    root = Path(root)
    _fill(root / "train" / "real", n, ".jpg", (24, 24))
    _fill(root / "train" / "fake", n, ".png", (16, 16))
    _fill(root / "test" / "sdxl" / "0_real", n, ".jpeg", (24, 24))
    _fill(root / "test" / "sdxl" / "1_fake", n, ".png", (16, 16))
    _fill(root / "test" / "flux" / "faces" / "Real", n, ".webp", (24, 24))
    _fill(root / "test" / "flux" / "faces" / "Fake", n, ".webp", (16, 16))


@pytest.fixture(scope="session")
def fx() -> SimpleNamespace:
    """The tree and file builders above. Every builder writes under its ``root``; image content
    is seeded by the file's path, so a tree built twice is byte-identical."""
    return SimpleNamespace(
        write_image=write_image,
        write_empty=write_empty,
        write_corrupt=write_corrupt,
        write_truncated_png=write_truncated_png,
        make_forensynths=make_forensynths,
        make_diffusionforensics=make_diffusionforensics,
        make_genimage=make_genimage,
        make_cocofake=make_cocofake,
        make_folder_tree=make_folder_tree,
    )


# ---------------------------------------------------------------- tiny saved detectors and a bad-input corpus

# The model packages import lazily, inside the builders: tests that need none of this stay light.


def _card(model_dir: Path, method: str, kind: str, cfg, threshold=0.5, ldm_dir=None) -> Path:
    from hrr_core.card import write_detector_card
    from hrr_core.confutil import to_dict

    return write_detector_card(
        model_dir,
        method=method,
        kind=kind,
        baseline=None,
        model_config=to_dict(cfg),
        train_generators=["tiny_gen"],
        profile="smoke",
        threshold=threshold,
        val_metrics={"ap": 1.0},
        data_summary={"n_train": 2, "n_val": 2},
        retrospection_ldm_dir=ldm_dir,
    )


def make_classifier_dir(root: Path) -> Path:
    """models/tiny_cnn: a BinaryClassifier on a width-4 small_resnet, best/ + detector.json."""
    from hrr_core.confutil import to_dict
    from hrr_core.models.backbones import BackboneConfig
    from hrr_core.models.classifier import BinaryClassifier, ClassifierConfig
    from hrr_core.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = ClassifierConfig(backbone=BackboneConfig(name="small_resnet", pretrained=False, width=4))
    model_dir = root / "tiny_cnn"
    save_checkpoint(
        model_dir / "best", BinaryClassifier(cfg).eval(), None, None, None, 0, 0, None, {"model": to_dict(cfg)}
    )
    _card(model_dir, "tiny_cnn", "classifier", cfg, threshold=0.45)
    return model_dir


def make_hrr_dir(root: Path) -> Path:
    """models/tiny_hrr: HRR over 2 scales with a tiny untrained pixel LDM copied into the folder."""
    from hrr_core.confutil import to_dict
    from hrr_core.models.backbones import BackboneConfig
    from hrr_core.models.hrr import HRRConfig, HRRDetector
    from hrr_core.models.ldm import LatentDiffusion, LDMConfig
    from hrr_core.models.msr import MSRConfig
    from hrr_core.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    msr = MSRConfig(scale_factors=(1.0, 2.0), base_size=32, input_size=32, max_upscale=4.0, num_steps=1)
    cfg = HRRConfig(backbone=BackboneConfig(name="small_resnet", pretrained=False, width=4), msr=msr)
    ldm = LDMConfig(space="pixel", norm_num_groups=4, unet_block_out_channels=(8, 8), max_train_timestep=300, seed=3)
    ldm_dir = LatentDiffusion.create(ldm).save(root / "retrospection_ldm")
    model_dir = root / "tiny_hrr"
    save_checkpoint(model_dir / "best", HRRDetector(cfg).eval(), None, None, None, 0, 0, None, {"model": to_dict(cfg)})
    _card(model_dir, "tiny_hrr", "hrr", cfg, ldm_dir=ldm_dir)
    return model_dir


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Saved, untrained tiny detectors with cards: ``classifier`` (threshold 0.45) and ``hrr``."""
    root = tmp_path_factory.mktemp("models")
    return {"classifier": make_classifier_dir(root), "hrr": make_hrr_dir(root)}


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
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


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
    put(
        "deep16.png",
        _encoded(Image.fromarray((np.arange(48 * 40).reshape(40, 48) * 30).astype(np.uint16)), "PNG"),
        True,
    )
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


@pytest.fixture(scope="session")
def detectors() -> SimpleNamespace:
    """The detector builders above, for tests that make their own: ``write_card``,
    ``make_classifier_dir``, ``make_hrr_dir``, ``make_corpus``, ``shown`` and the tiny configs."""
    from hrr_core.models.msr import MSRConfig

    msr = MSRConfig(scale_factors=(1.0, 2.0), base_size=32, input_size=32, max_upscale=4.0, num_steps=1)
    return SimpleNamespace(
        write_card=_card,
        make_classifier_dir=make_classifier_dir,
        make_hrr_dir=make_hrr_dir,
        make_corpus=make_corpus,
        shown=shown,
        TINY_BACKBONE=dict(name="small_resnet", pretrained=False, width=4),
        TINY_MSR=msr,
    )


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, tuple[str, bool]]:
    return make_corpus(tmp_path_factory.mktemp("corpus") / "inputs")


# ---------------------------------------------------------------- the smoke baseline repository


def run_checked(cmd: list[str], cwd: Path, env: dict, timeout: int = 1500) -> subprocess.CompletedProcess:
    """Run ``cmd``; a non-zero exit fails the test with the tail of its output."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def project_env(root: Path) -> dict:
    """The environment a user's shell has in ``root``: this venv first on PATH, offline, no analytics."""
    return {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HRR_PROJECT_ROOT": str(root),
    }


class SmokeRepo(NamedTuple):
    """A git + DVC repository of the project (profile smoke) and the environment to run in it."""

    root: Path
    env: dict

    def run(self, *cmd: str, timeout: int = 1500) -> subprocess.CompletedProcess:
        return run_checked(list(cmd), self.root, self.env, timeout)

    def dvc(self, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "dvc", *args, timeout=timeout)

    def git(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(*GIT, *args, timeout=120)

    def copy_to(self, dest: Path) -> SmokeRepo:
        """An independent copy (work tree, git history, DVC cache) for a test that changes it."""
        shutil.copytree(self.root, dest, symlinks=True)
        return SmokeRepo(dest, project_env(dest))


def copy_work_tree(dest: Path) -> None:
    """The working tree's tracked and untracked, not ignored, files, without generated outputs."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    for generated in GENERATED:
        target = dest / generated
        shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory) -> SmokeRepo:
    """The working tree copied into a fresh git repository (one commit) with ``profile: smoke``,
    after one ``dvc repro``. Shared by every test of the session: read it, do not change it."""
    repo = fresh_smoke_repo(tmp_path_factory.mktemp("repo"))
    repo.dvc("repro")
    return repo


@pytest.fixture
def new_smoke_repo(tmp_path):
    """``new_smoke_repo(name)``: a fresh smoke-profile repository under tmp_path, nothing run yet."""
    return lambda name="repo": fresh_smoke_repo(tmp_path / name)


def fresh_smoke_repo(dest: Path) -> SmokeRepo:
    """The working tree copied into a fresh git repository (one commit) at ``dest`` with
    ``profile: smoke``, as a fresh clone is: no outputs, nothing run yet."""
    copy_work_tree(dest)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["profile"] = "smoke"
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    repo = SmokeRepo(dest, project_env(dest))
    repo.run("git", "init", "-q")
    repo.git("add", "-A")
    repo.git("commit", "-qm", "copy")
    return repo
