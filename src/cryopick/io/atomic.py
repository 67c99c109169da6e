"""Atomic file output: write to a temporary file beside the target, then ``os.replace``.

A reader never sees a half-written file, and a failure (an exception, a full disk)
leaves any previous file at the target untouched and no temporary file behind. A write
that fails with an OSError (disk full, permission denied; also inside ``torch.save``,
which reports it as a RuntimeError) becomes one :class:`OutputError` line naming the
file and what to free or change.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from cryopick.errors import OutputError, write_error_message

__all__ = [
    "atomic_path",
    "atomic_write",
    "atomic_save_bytes",
    "atomic_torch_save",
    "atomic_write_text",
    "atomic_write_json",
    "ensure_out_dir",
    "remove_stale_temps",
]


def ensure_out_dir(path: str | os.PathLike[str]) -> Path:
    """Create directory ``path`` (and parents) if needed and check it is writable."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a directory; choose another output folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise OutputError(
            f"{out}: cannot create the folder because a parent is a file; choose another output folder"
        ) from None
    except OSError as exc:
        raise OutputError(
            f"{out}: cannot create the folder ({exc.strerror or exc}); check permissions and free space"
        ) from None
    probe = out / f".cryopick-write-test-{secrets.token_hex(4)}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(
            f"{out}: folder is not writable ({exc.strerror or exc}); check permissions or choose another output folder"
        ) from None
    return out


def _temp_name(target: Path) -> Path:
    # keep the target's suffix last, for writers that look at it (mrcfile, PIL)
    return target.with_name(f".{target.stem}.{secrets.token_hex(4)}.tmp{target.suffix}")


def remove_stale_temps(folder: str | os.PathLike[str], names: list[str]) -> list[Path]:
    """Remove the temporary files a killed writer of ``folder/name`` left behind; return them.

    Only for a folder no other process writes to (e.g. a run being resumed). Readers
    never see these files anyway: they are hidden and never replace the target.
    """
    removed = []
    for name in names:
        target = Path(folder) / name
        pattern = re.compile(rf"\.{re.escape(target.stem)}\.[0-9a-f]{{8}}\.tmp{re.escape(target.suffix)}")
        for f in target.parent.glob(f".{glob.escape(target.stem)}.*.tmp{glob.escape(target.suffix)}"):
            if pattern.fullmatch(f.name) and f.is_file():
                _remove_quietly(f)
                removed.append(f)
    return removed


def _prepare_target(path: str | os.PathLike[str]) -> Path:
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"{target}: is a directory; give a file name to write")
    parent = target.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{target}: {parent} is a file, not a folder; choose another output path")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"{target}: cannot create the folder {parent} ({exc.strerror or exc}); check the path and permissions"
        ) from None
    return target


def _create_temp(target: Path) -> tuple[Path, int]:
    """Create an empty, new temporary file beside ``target``; return its path and descriptor."""
    tmp = _temp_name(target)
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except OSError as exc:
        raise OutputError(write_error_message(target, exc)) from None
    return tmp, fd


def _os_error_in(exc: BaseException) -> OSError | None:
    """``exc`` if it is an OSError, else the OSError it was raised from or while handling (e.g.
    ``torch.save`` turns a failed write into ``RuntimeError: ... unexpected pos``)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _failed(tmp: Path, target: Path, exc: BaseException) -> None:
    """Remove the temporary file; re-raise a write's OSError as one OutputError line."""
    _remove_quietly(tmp)
    if isinstance(exc, OutputError):
        return
    os_error = _os_error_in(exc) if isinstance(exc, Exception) else None
    if os_error is not None:
        raise OutputError(write_error_message(target, os_error)) from exc


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Best effort: make the rename durable (not supported everywhere)."""
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


def _commit(tmp: Path, target: Path) -> None:
    try:
        os.replace(tmp, target)
    except OSError as exc:
        _remove_quietly(tmp)
        raise OutputError(
            f"{target}: cannot replace the file ({exc.strerror or exc}); check permissions and that it is not a folder"
        ) from None
    _fsync_dir(target.parent)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a third-party writer to create.

    When the block ends normally the temporary file is fsynced and moved onto ``path``;
    on an exception it is removed and ``path`` is left as it was. The temporary file
    already exists (empty) so writers must overwrite it; its name keeps the target's suffix.
    """
    target = _prepare_target(path)
    tmp, fd = _create_temp(target)
    os.close(fd)
    try:
        yield tmp
        _fsync_file(tmp)
    except BaseException as exc:
        _failed(tmp, target, exc)
        raise
    _commit(tmp, target)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``path`` when the block succeeds.

    ``mode`` is ``"w"``/``"wt"`` (text, ``encoding``) or ``"wb"`` (binary).
    """
    if mode not in ("w", "wt", "wb"):
        raise ValueError(f"atomic_write: unsupported mode {mode!r} (use 'w' or 'wb')")
    target = _prepare_target(path)
    tmp, fd = _create_temp(target)
    binary = "b" in mode
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException as exc:
        _failed(tmp, target, exc)
        raise
    _commit(tmp, target)


def atomic_save_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    with atomic_write(path, "w") as fh:
        fh.write(text)
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON; numpy scalars/arrays and paths are converted."""
    text = json.dumps(obj, indent=2, default=_json_default)
    return atomic_write_text(path, text + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """Atomically ``torch.save`` ``obj`` to ``path``."""
    import torch  # local import: keeps ``import cryopick.io`` light

    with atomic_write(path, "wb") as fh:
        torch.save(obj, fh)
    return Path(path)
