"""Writes that survive a kill: a file (or a folder such as a bag) appears under its name complete or not at all.

A ``kill -9``, a power cut or a full disk at any moment leaves either nothing, the previous version, or the whole
new one under the target name, never a file that loads as valid but is wrong (half a JSON, a checkpoint cut in a
tensor). The new content is written to a temporary name in the same folder (same file system, so the rename is
atomic), flushed to disk (``fsync``) and renamed over the target with :func:`os.replace`; the folder is synced so
the rename itself is durable. An interrupted write leaves only a hidden ``.<name>.<pid>.tmp`` file (or
``.<name>.partial/`` folder) behind, which no reader opens.

* :func:`atomic_write`: ``with atomic_write(path, "w") as f: f.write(...)`` (text or ``"wb"``; any writer taking a
  file object: ``torch.save(obj, f)``, ``fig.savefig(f, format="png")``).
* :func:`atomic_write_text`, :func:`atomic_write_bytes`: the one-call forms.
* :func:`atomic_dir`: a folder written under a temporary name and renamed at the end (ROS 2 bags).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_bytes", "atomic_dir", "fsync_dir", "partial_dir_of"]


def fsync_dir(path: str | PathLike[str]) -> None:
    """Flush a folder's entries (a rename or a new file in it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(
    path: str | PathLike[str], mode: str = "w", *, encoding: str | None = "utf-8", newline: str | None = None
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; when the block ends without an exception the file is
    flushed, synced and renamed to ``path`` (replacing it); on an exception it is removed and ``path`` is left as it
    was. The parent folder is created.

    Args:
        path: the target file.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        encoding, newline: for text mode.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    kwargs: dict[str, Any] = {} if mode == "wb" else {"encoding": encoding, "newline": newline}
    f = open(tmp, mode, **kwargs)  # noqa: SIM115 - closed below, before the rename
    try:
        yield f
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(tmp, path)
    except BaseException:
        f.close()
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`); returns ``path``."""
    with atomic_write(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)


def atomic_write_bytes(path: str | PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`); returns ``path``."""
    with atomic_write(path, "wb") as f:
        f.write(data)
    return Path(path)


def partial_dir_of(path: str | PathLike[str]) -> Path:
    """The hidden folder :func:`atomic_dir` writes ``path`` in: ``<parent>/.<name>.partial``."""
    path = Path(path)
    return path.parent / f".{path.name}.partial"


@contextlib.contextmanager
def atomic_dir(path: str | PathLike[str]) -> Iterator[Path]:
    """A folder that appears under ``path`` complete or not at all.

    Yields ``<parent>/.<name>.partial/<name>``, a path that does not exist yet: create it (e.g. a rosbags
    ``Writer``, which names the bag's storage file after the folder, so the file names are those of ``path``).
    When the block ends without an exception it is renamed to ``path``; on an exception it is removed. A
    ``.<name>.partial`` left by a killed earlier run is removed first (its bag may still be rescued with
    ``imkd bag recover`` before that).

    Raises:
        FileExistsError: ``path`` exists (a folder is never replaced).
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists")
    holder = partial_dir_of(path)
    if holder.exists():
        shutil.rmtree(holder)
    holder.mkdir(parents=True)
    inner = holder / path.name
    try:
        yield inner
        for p in [inner, *inner.rglob("*")] if inner.exists() else []:
            if p.is_file():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        os.rename(inner, path)  # fails, rather than replaces, where path appeared meanwhile
        fsync_dir(path.parent)
    finally:
        shutil.rmtree(holder, ignore_errors=True)
