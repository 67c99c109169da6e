"""Output folders that are never silently replaced, and never written by two runs at once.

* :func:`folder_lock` holds ``OUT/.cryopick.lock`` while a command writes into ``OUT``.
  The lock is an ``fcntl.flock`` on that file, which the system drops when its process
  ends, however it ends: a crashed or killed run never blocks the next one. The file
  holds the writer's pid and command, for the message a second writer gets. Where
  ``flock`` is missing, the file is created with ``O_EXCL`` and a lock whose pid is no
  longer running (on this host) is stale.
* :func:`earlier_outputs` lists what an earlier run left (names a command writes).
* :func:`clear_outputs` removes them (``--overwrite`` of a training run, once its inputs
  have been read).
* :func:`replace_folder` gives a command a sibling temporary folder to write the whole
  new output set into, and renames it into place when the command succeeds; the earlier
  folder is removed only then (``--overwrite`` of ``pick`` / ``predict``), so no stale
  per-micrograph file survives and a failure keeps the earlier outputs.

Under torchrun only rank 0 locks and checks (the other ranks write where it does).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from cryopick.errors import OutputError, os_error_message, write_error_message
from cryopick import runlayout as layout
from cryopick.io.atomic import ensure_out_dir

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "folder_lock", "earlier_outputs", "clear_outputs", "replace_folder", "is_rank0",
           "RUN_OUTPUTS", "PICK_OUTPUTS", "PREDICT_OUTPUTS", "matcher"]

LOCK_NAME = ".cryopick.lock"
_STAGING = ".cryopick-new"
_OLD = ".cryopick-old"

# What each command writes into its folder (names of its top-level entries).
RUN_OUTPUTS = [r".+\.pt", layout.METRICS, layout.CONFIG, *layout.SUMMARIES.values(), layout.SUPERVISED,
               layout.MEMBERS, layout.iteration_dir(r"\d+")]  # train and selftrain (run file names: cryopick.runlayout)
PICK_OUTPUTS = ["picks.star", "picks_cryosparc.star", "picks.tsv", "picks.json", "box", "csv", "maps",
                layout.PICK_SUMMARY, layout.CONFIG]
PREDICT_OUTPUTS = [r".+_(prob|mask)\.(mrc|png)"]


def matcher(patterns: list[str]) -> Callable[[str], bool]:
    """Whether a name is one of ``patterns`` (regular expressions matched whole)."""
    compiled = [re.compile(p) for p in patterns]
    return lambda name: any(c.fullmatch(name) for c in compiled)


def is_rank0() -> bool:
    """Not launched by torchrun, or its rank 0 (read from the environment: no process group needed)."""
    try:
        return int(os.environ.get("RANK") or 0) == 0
    except ValueError:
        return True


def earlier_outputs(out: Path, known: Callable[[str], bool]) -> list[str]:
    """Names in ``out`` (not hidden) that ``known`` says a command writes, sorted."""
    if not out.is_dir():
        return []
    return sorted(p.name for p in out.iterdir() if not p.name.startswith(".") and known(p.name))


def listing(names: list[str], k: int = 4) -> str:
    return ", ".join(names[:k]) + (f", ... ({len(names)} in all)" if len(names) > k else "")


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise OutputError(f"{path}: cannot remove the earlier output ({exc.strerror or exc}); remove it by hand, "
                          "or choose another --out") from None


def clear_outputs(out: Path, known: Callable[[str], bool]) -> list[str]:
    """Remove what an earlier run wrote into ``out`` (``known`` names only; other files stay)."""
    names = earlier_outputs(out, known)
    for name in names:
        _remove(out / name)
    return names


# ----------------------------------------------------------------------------- the lock


def _holder(text: str) -> str:
    parts = text.split(maxsplit=3)
    if len(parts) >= 3 and parts[0].isdigit():
        since = time.strftime("%H:%M", time.localtime(float(parts[2]))) if _is_number(parts[2]) else "?"
        what = f", {parts[3].strip()}" if len(parts) > 3 else ""
        return f"pid {parts[0]} on {parts[1]}{what}, since {since}"
    return "another process"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode(errors="replace")
    except OSError:
        return ""


def _busy(out: Path, holder: str) -> OutputError:
    return OutputError(f"{out}: another cryopick ({holder}) is writing into this folder; wait for it to finish, "
                       "or choose another --out")


def _stamp(fd: int, command: str) -> None:
    text = f"{os.getpid()} {socket.gethostname()} {time.time():.0f} cryopick {command}\n".encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, text, 0)


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _acquire_flock(out: Path, path: Path, command: str) -> int | None:
    """Descriptor of the locked file, or None where this file system has no flock."""
    for _ in range(10):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(write_error_message(path, exc)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise _busy(out, _holder(holder)) from None
            return None  # ENOLCK, EOPNOTSUPP...: no flock here
        if _same_file(path, fd):  # not removed by its last holder between our open and flock
            _stamp(fd, command)
            return fd
        os.close(fd)
    raise _busy(out, "another process")


def _pid_alive(text: str) -> bool:
    parts = text.split()
    if len(parts) < 2 or not parts[0].isdigit():
        return True  # unreadable: assume alive, the message says which file
    if parts[1] != socket.gethostname():
        return True  # another machine: cannot tell
    try:
        os.kill(int(parts[0]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _acquire_exclusive(out: Path, path: Path, command: str) -> int:
    """Fallback without flock: create the file with O_EXCL; a lock of a dead pid is stale."""
    for _ in range(3):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            if _pid_alive(text):
                raise _busy(out, _holder(text)) from None
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # stale: its process is gone
            continue
        except OSError as exc:
            raise OutputError(write_error_message(path, exc)) from None
        _stamp(fd, command)
        return fd
    raise _busy(out, "another process")


@contextlib.contextmanager
def folder_lock(out: str | os.PathLike[str], command: str) -> Iterator[Path]:
    """Hold the lock of folder ``out`` (created if needed) for the block; yields ``out``."""
    out = ensure_out_dir(out)
    if not is_rank0():
        yield out
        return
    path = out / LOCK_NAME
    fd = _acquire_flock(out, path, command) if fcntl is not None else None
    if fd is None:
        fd = _acquire_exclusive(out, path, command)
    try:
        yield out
    finally:
        if _same_file(path, fd):  # the folder may have been moved away (replace_folder)
            with contextlib.suppress(OSError):
                path.unlink()
        os.close(fd)


# ----------------------------------------------------------------------------- replacing a folder


def _sibling(out: Path, tag: str) -> Path:
    return out.parent / f".{out.name}{tag}"


@contextlib.contextmanager
def replace_folder(out: Path) -> Iterator[Path]:
    """Yield a new sibling folder of ``out`` to write into; on success it replaces ``out``.

    On an exception the new folder is removed and ``out`` stays as it was. The caller
    holds ``out``'s lock, so a left-over sibling (of a killed run) is stale and removed.
    """
    out = Path(os.path.abspath(out))
    staging = _sibling(out, _STAGING)
    if is_rank0():
        _remove(staging)
    try:
        ensure_out_dir(staging)
        yield staging
    except BaseException as exc:
        if is_rank0():
            with contextlib.suppress(OutputError):
                _remove(staging)
        if isinstance(exc, (OutputError, OSError)):  # name the file as the user knows it, not the staging one
            text = str(exc) if isinstance(exc, OutputError) else os_error_message(exc)
            raise OutputError(text.replace(str(staging), str(out))) from exc
        raise
    if is_rank0():
        _swap(out, staging)


def _swap(out: Path, staging: Path) -> None:
    old = _sibling(out, f"{_OLD}-{secrets.token_hex(4)}")
    try:
        os.rename(out, old)
    except OSError as exc:
        raise OutputError(f"{out}: cannot move the earlier outputs aside ({exc.strerror or exc}); the new outputs "
                          f"are in {staging}; check the permissions of {out.parent}") from None
    try:
        os.rename(staging, out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.rename(old, out)
        raise OutputError(f"{out}: cannot move the new outputs into place ({exc.strerror or exc}); they are in "
                          f"{staging}") from None
    with contextlib.suppress(OSError):
        shutil.rmtree(old)
