"""One place that knows where the project root is.

Papermill runs notebooks from the repository root, JupyterLab from the notebook's folder:
every path in the project is resolved through :func:`project_root` so both work.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

_MARKERS = ("params.yaml", "dvc.yaml")


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) holding
    ``params.yaml`` and ``dvc.yaml``; ``HRR_PROJECT_ROOT`` overrides the search."""
    env = os.environ.get("HRR_PROJECT_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if all((folder / m).exists() for m in _MARKERS):
            return folder
    raise FileNotFoundError(
        f"no project root (a folder with {' and '.join(_MARKERS)}) at or above {here}; "
        "run from inside the hrr checkout or set HRR_PROJECT_ROOT"
    )


def resolve(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """``path`` if absolute, else relative to the project root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else Path(root or project_root()) / p


def inside(folder: str | os.PathLike, rel: object, follow_links: bool = True) -> Path | None:
    """``folder / rel`` when ``rel``, a path read from a file in ``folder`` (a saved config, a
    model card), names something inside ``folder``: a non-empty relative POSIX path without
    ``..`` that, with ``follow_links``, still lies inside ``folder`` once symlinks are resolved.
    None otherwise, for the caller to refuse naming its file and the fix."""
    if not isinstance(rel, str) or not rel or "\\" in rel or ":" in rel:
        return None
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts:
        return None
    target = Path(folder) / p
    if follow_links and not target.resolve().is_relative_to(Path(folder).resolve()):
        return None
    return target
