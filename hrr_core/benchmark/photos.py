"""The real-photo seed set of the embedded benchmark: licence-clean photos from package registries.

Every photo comes from a pinned PyPI wheel or Debian package (the only registries reachable
offline), is downscaled to at most ``MAX_SIDE`` px on its long side (Lanczos, antialiased) and
stored as a JPEG at quality 95 with 4:4:4 chroma. ``provenance.csv`` records, per photo, where it
came from (package, exact version, package-relative path, source sha256), its licence and author,
and the sha256 of the stored file. Photos keep their own licences: see ``LICENSES.md`` beside them.
The photos to fetch are data, not code: ``seed_sources.csv`` beside this module (see :func:`load_sources`).

    python -m hrr_core.benchmark.photos rebuild --dest data/seed [--workdir DIR]
    python -m hrr_core.benchmark.photos verify --dir data/seed
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from hrr_core.io import atomic_dir, atomic_write_bytes, atomic_write_text, image_to_array, load_image

MAX_SIDE = 1024
JPEG_QUALITY = 95
STORED_EXT = "jpg"
MAX_TOTAL_BYTES = 24 * 1024 * 1024  # 20 MiB until release 2 (113 photos: 20.4 MiB); the repo allows ~35 MB
PROVENANCE = "provenance.csv"
COLUMNS = (
    "id",
    "group",
    "file",
    "kind",
    "package",
    "version",
    "path",
    "licence",
    "package_licence",
    "author",
    "release",
    "is_grey",
    "orig_width",
    "orig_height",
    "source_sha256",
    "width",
    "height",
    "sha256",
)


# ---------------------------------------------------------------------------------------------
# The declarative source list: seed_sources.csv beside this module
# ---------------------------------------------------------------------------------------------

SOURCES_CSV = Path(__file__).with_name("seed_sources.csv")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
KINDS = ("pip", "deb")


@dataclass(frozen=True)
class PhotoSource:
    """One photo inside one pinned package (one row of ``seed_sources.csv``). ``licence`` is the
    per-file statement where the package makes one (scikit-image loader docstrings, scikit-learn's
    images README.txt, mate/lomiri debian/copyright stanzas, plasma metadata.json KPlugin.License,
    palapeli .desktop X-KDE-PluginInfo-License), ``package_licence`` the package-wide one;
    ``group`` ties photos of one scene (the two Middlebury motorcycle views) to one split;
    ``release`` says in which addition to the set the photo came (1: the first set; a profile
    picks releases with ``benchmark.photo_releases``, so adding photos never changes a profile
    that does not ask for them)."""

    id: str
    group: str
    kind: str  # "pip" | "deb"
    package: str
    version: str
    path: str  # inside the wheel, or inside the .deb's data tree
    licence: str
    package_licence: str
    author: str
    release: int


def load_sources(path: str | Path = SOURCES_CSV) -> tuple[PhotoSource, ...]:
    """The photo sources listed in ``path`` (CSV, one row per photo, columns = the fields of
    :class:`PhotoSource`), validated: every value non-empty without surrounding spaces, ``kind``
    pip or deb, ids unique and usable as file names, ``release`` a positive integer. Errors name
    the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"photo source list {path} not found; it ships with hrr_core (package data)")
    fields = [f.name for f in dataclasses.fields(PhotoSource)]
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != fields:
            raise ValueError(f"{path}: columns are {reader.fieldnames}; expected exactly {fields}")
        sources, seen = [], {}
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            bad = [k for k in fields if not row[k] or row[k] != row[k].strip()]
            if None in row or bad:
                raise ValueError(
                    f"{where}: {'too many values' if None in row else f'empty or padded {bad}'}; "
                    f"give each of {fields} a value"
                )
            if row["kind"] not in KINDS:
                raise ValueError(f"{where}: kind {row['kind']!r}; use one of {', '.join(KINDS)}")
            if not _ID.fullmatch(row["id"]):
                raise ValueError(f"{where}: id {row['id']!r} is not a file name stem (letters, digits, _ . -)")
            if row["id"] in seen:
                raise ValueError(f"{where}: id {row['id']!r} already on line {seen[row['id']]}; ids must be unique")
            if not re.fullmatch(r"[0-9]+", row["release"]) or int(row["release"]) < 1:
                raise ValueError(f"{where}: release {row['release']!r} is not a positive integer")
            seen[row["id"]] = reader.line_num
            sources.append(PhotoSource(**{**row, "release": int(row["release"])}))
    if not sources:
        raise ValueError(f"{path}: no photo rows")
    return tuple(sources)


SOURCES: tuple[PhotoSource, ...] = load_sources()


# ---------------------------------------------------------------------------------------------
# Fetch, extract, convert
# ---------------------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stderr.strip()[-2000:]}")


def fetch_package(kind: str, package: str, version: str, workdir: Path) -> Path:
    """Download one pinned package into ``workdir/downloads`` (reused when already there)."""
    dl = workdir / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    if kind == "pip":
        stem = package.replace("-", "_")
        hits = sorted(dl.glob(f"{stem}-{version}-*.whl"))
        if not hits:
            _run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--quiet",
                    "-d",
                    str(dl),
                    f"{package}=={version}",
                ],
                dl,
            )
            hits = sorted(dl.glob(f"{stem}-{version}-*.whl"))
    elif kind == "deb":
        upstream = version.split(":", 1)[-1]
        hits = sorted(p for p in dl.glob(f"{package}_*{upstream}_*.deb"))
        if not hits:
            try:
                _run(["apt-get", "download", f"{package}={version}"], dl)
            except RuntimeError:  # empty or stale package lists: refresh once and retry
                _run(["apt-get", "update"], dl)
                _run(["apt-get", "download", f"{package}={version}"], dl)
            hits = sorted(p for p in dl.glob(f"{package}_*{upstream}_*.deb"))
    else:
        raise ValueError(f"unknown source kind {kind!r}; use 'pip' or 'deb'")
    if not hits:
        raise RuntimeError(f"downloaded {package}=={version} ({kind}) but found no file for it in {dl}")
    return hits[0]


def read_member(archive: Path, kind: str, path: str, workdir: Path) -> bytes:
    """Bytes of one package-relative file: straight from the wheel, or from the extracted .deb."""
    if kind == "pip":
        with zipfile.ZipFile(archive) as zf:
            try:
                return zf.read(path)
            except KeyError:
                raise FileNotFoundError(f"{path} is not in {archive.name}") from None
    root = workdir / "extract" / archive.stem
    if not root.exists():
        with atomic_dir(root) as tmp:
            _run(["dpkg-deb", "-x", str(archive), str(tmp)], workdir)
    member = root / path
    if not member.is_file():
        raise FileNotFoundError(f"{path} is not in {archive.name}")
    return member.read_bytes()


def convert_photo(data: bytes) -> tuple[bytes, dict]:
    """Source bytes -> stored JPEG bytes and facts (grey?, sizes). Deterministic: no metadata,
    no ICC profile (pixel values are kept as decoded, as the packages' own loaders do)."""
    with tempfile.NamedTemporaryFile(suffix=".img") as fh:
        fh.write(data)
        fh.flush()
        im = load_image(fh.name)  # RGB, EXIF orientation applied
    arr = image_to_array(im)  # (H, W, 3)
    is_grey = bool((arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all())
    if is_grey:
        im = im.convert("L")
    w, h = im.size
    scale = MAX_SIDE / max(w, h)
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=None)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)
    return buf.getvalue(), {
        "is_grey": is_grey,
        "orig_width": w,
        "orig_height": h,
        "width": im.size[0],
        "height": im.size[1],
    }


def _changes(old: pd.DataFrame | None, new: pd.DataFrame) -> list[str]:
    """Human-readable differences in the sources against the previously recorded provenance."""
    if old is None or old.empty:
        return []
    prev = old.set_index("id")
    out = []
    for row in new.itertuples(index=False):
        if row.id not in prev.index:
            out.append(f"{row.id}: new photo ({row.package} {row.version} {row.path})")
            continue
        was = prev.loc[row.id]
        if was["source_sha256"] != row.source_sha256:
            ver = (
                f"version {was['version']} -> {row.version}"
                if was["version"] != row.version
                else f"same version {row.version}"
            )
            out.append(
                f"{row.id}: source file {row.package}:{row.path} changed "
                f"({ver}, sha256 {was['source_sha256'][:12]} -> "
                f"{row.source_sha256[:12]}, size {was['orig_width']}x{was['orig_height']} -> "
                f"{row.orig_width}x{row.orig_height})"
            )
        elif was["sha256"] != row.sha256:
            out.append(f"{row.id}: same source but the stored file differs (Pillow/libjpeg version?)")
    out += [f"{pid}: no longer declared; removed" for pid in sorted(set(prev.index) - set(new["id"]))]
    return out


def rebuild_seed_set(
    dest: str | Path, workdir: str | Path | None = None, sources: tuple[PhotoSource, ...] = SOURCES, log=print
) -> pd.DataFrame:
    """Fetch every package, convert every photo, write ``<id>.jpg`` + ``provenance.csv`` into
    ``dest`` (atomically, provenance last). Changes against the old provenance are logged and
    kept in ``df.attrs["changes"]``. Needs ``pip`` and (for deb sources) ``apt-get``/``dpkg-deb``
    after one ``apt-get update``."""
    dest = Path(dest)
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="hrr-seed-"))
    work.mkdir(parents=True, exist_ok=True)
    ids = [s.id for s in sources]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate photo ids in the source list: {sorted({i for i in ids if ids.count(i) > 1})}")
    old = load_seed_table(dest) if (dest / PROVENANCE).exists() else None
    archives: dict[tuple[str, str, str], Path] = {}
    rows = []
    for src in sources:
        key = (src.kind, src.package, src.version)
        if key not in archives:
            log(f"fetching {src.package}=={src.version} ({src.kind})")
            archives[key] = fetch_package(*key, work)
        data = read_member(archives[key], src.kind, src.path, work)
        stored, facts = convert_photo(data)
        name = f"{src.id}.{STORED_EXT}"
        atomic_write_bytes(dest / name, stored).chmod(0o644)
        rows.append(
            {
                **dataclasses.asdict(src),
                "file": name,
                "source_sha256": _sha256(data),
                "sha256": _sha256(stored),
                **facts,
            }
        )
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for stale in _image_files(dest) - set(df["file"]):
        (dest / stale).unlink()
    total = int(sum((dest / f).stat().st_size for f in df["file"]))
    if total > MAX_TOTAL_BYTES:
        raise ValueError(
            f"seed set is {total / 2**20:.1f} MiB, over the {MAX_TOTAL_BYTES / 2**20:.0f} MiB budget; "
            "lower JPEG_QUALITY or MAX_SIDE"
        )
    changes = _changes(old, df)
    for line in changes:
        log(f"changed: {line}")
    atomic_write_text(dest / PROVENANCE, df.to_csv(index=False, lineterminator="\n")).chmod(0o644)
    df.attrs["changes"] = changes
    log(f"wrote {len(df)} photos ({total / 2**20:.2f} MiB) to {dest}")
    return df


# ---------------------------------------------------------------------------------------------
# Read and verify the committed set
# ---------------------------------------------------------------------------------------------


def _image_files(folder: Path) -> set[str]:
    exts = {".jpg", ".jpeg", ".png", ".webp"}
    return {p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts} if folder.is_dir() else set()


def load_seed_table(folder: str | Path) -> pd.DataFrame:
    """``provenance.csv`` of a seed-set folder, with typed columns (one written before the
    ``release`` column existed reads as all release 1)."""
    path = Path(folder) / PROVENANCE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; build it with `python -m hrr_core.benchmark.photos rebuild`")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "release" not in df.columns and len(df.columns):  # written before releases existed: all the first set
        df.insert(list(df.columns).index("author") + 1 if "author" in df.columns else len(df.columns), "release", "1")
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; rebuild the seed set")
    for col in ("orig_width", "orig_height", "width", "height", "release"):
        df[col] = df[col].astype(int)
    df["is_grey"] = df["is_grey"].map({"True": True, "False": False})
    if df["is_grey"].isna().any():
        raise ValueError(f"{path}: is_grey must be True or False")
    return df


def load_seed_photo(folder: str | Path, row) -> np.ndarray:
    """(H, W, 3) uint8 RGB array of one photo (``row``: a provenance row, or its id);
    grey photos come back as three equal channels."""
    if isinstance(row, str):
        return image_to_array(load_image(Path(folder) / f"{row}.{STORED_EXT}"))
    return image_to_array(load_image(Path(folder) / row["file"]))


def verify_seed_set(folder: str | Path) -> list[str]:
    """Problems with a seed-set folder (empty list when all is well): missing or altered
    files, duplicate ids, stray images, sizes over budget."""
    folder = Path(folder)
    try:
        df = load_seed_table(folder)
    except (FileNotFoundError, ValueError) as exc:
        return [str(exc)]
    problems = [f"duplicate id {i}" for i in sorted(df["id"][df["id"].duplicated()].unique())]
    total = 0
    for row in df.itertuples(index=False):
        path = folder / row.file
        if not path.is_file():
            problems.append(f"{row.id}: missing file {row.file}")
            continue
        data = path.read_bytes()
        total += len(data)
        if _sha256(data) != row.sha256:
            problems.append(f"{row.id}: sha256 of {row.file} does not match provenance.csv (file altered?)")
        if max(row.width, row.height) > MAX_SIDE:
            problems.append(f"{row.id}: stored size {row.width}x{row.height} exceeds {MAX_SIDE} px")
    problems += [f"stray image {n} not in provenance.csv" for n in sorted(_image_files(folder) - set(df["file"]))]
    if total > MAX_TOTAL_BYTES:
        problems.append(f"seed set is {total / 2**20:.1f} MiB, over {MAX_TOTAL_BYTES / 2**20:.0f} MiB")
    if not (folder / "LICENSES.md").is_file():
        problems.append("LICENSES.md is missing")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hrr_core.benchmark.photos", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    rb = sub.add_parser("rebuild", help="fetch the packages and rebuild the seed set")
    rb.add_argument("--dest", default="data/seed")
    rb.add_argument("--workdir", default=None, help="download/extract cache (default: a temporary folder)")
    vf = sub.add_parser("verify", help="check a seed set against its provenance.csv")
    vf.add_argument("--dir", default="data/seed")
    args = ap.parse_args(argv)
    if args.cmd == "rebuild":
        rebuild_seed_set(args.dest, args.workdir)
        return 0
    problems = verify_seed_set(args.dir)
    for p in problems:
        print(f"problem: {p}", file=sys.stderr)
    print(f"{args.dir}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
