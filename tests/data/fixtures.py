"""Builders of tiny benchmark trees (8-32 px images) in each real layout, for the adapter tests.

Every builder writes under ``root`` and returns nothing: the tests state their expected
counts from the layout they asked for. Image content is seeded by the file's path, so a tree
built twice is byte-identical.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

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
    for base, gen in ((root / "stable_diffusion_v_1_4" / "imagenet_ai_0419_sdv4", "sdv4"), (root / "imagenet_ai_0508_adm", "adm")):
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
