"""Where the package's shipped files are (models, config), in the source tree or an installed prefix; no ROS.

Lookup order: the source tree (``<repo>/models``, ``<repo>/config``), the pip/colcon install
(``<sys.prefix>/share/imkd_ros/...``), then the ament index of a ROS install.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["DEFAULT_MODEL", "share_dirs", "shipped_file", "resolve_checkpoint"]

#: The shipped model that the detector node and the demo use by default (file name under ``models/``).
DEFAULT_MODEL = "student_imkd.pt"
_REPO = Path(__file__).resolve().parents[2]


def share_dirs() -> list[Path]:
    """Folders that may hold ``models/`` and ``config/``, in lookup order."""
    dirs = [_REPO, Path(sys.prefix) / "share" / "imkd_ros"]
    try:
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory("imkd_ros")))
    except (ImportError, LookupError, OSError, ValueError):
        pass
    return dirs


def shipped_file(relative: str) -> Path:
    """The first ``<dir>/<relative>`` of :func:`share_dirs` that exists.

    Raises:
        FileNotFoundError: none does (the message lists where it looked).
    """
    tried = [d / relative for d in share_dirs()]
    for path in tried:
        if path.is_file():
            return path
    raise FileNotFoundError(f"{relative} not found (looked at {', '.join(str(p) for p in tried)})")


def resolve_checkpoint(value: str = "") -> Path:
    """A checkpoint parameter -> file: ``""`` means :data:`DEFAULT_MODEL`; an existing path is used as is; a bare
    name is looked up under ``models/`` of :func:`share_dirs`.

    Raises:
        FileNotFoundError: nothing found.
    """
    name = value or DEFAULT_MODEL
    if Path(name).is_file():
        return Path(name)
    try:
        return shipped_file(f"models/{name}")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"checkpoint {name!r} not found (looked at {', '.join(str(d / 'models' / name) for d in share_dirs())})"
        ) from None
