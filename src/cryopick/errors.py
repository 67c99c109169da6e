"""Errors meant for the user: the CLI prints ``str(err)`` as one line and exits non-zero.

Library code raises a subclass of :class:`CryopickError` with a message that names the
file (when there is one), the problem, and what to do about it.
"""


class CryopickError(Exception):
    """Base class of every error cryopick reports to the user as one line."""

    exit_code = 2


class InputError(CryopickError):
    """A micrograph, label file, checkpoint or option the user gave is unusable."""


class OutputError(CryopickError):
    """An output location cannot be written."""

    exit_code = 3


class CheckpointError(InputError):
    """A checkpoint is unreadable, of another architecture, or of an incompatible version."""


_WRITE_HINTS = {
    "ENOSPC": "the disk is full: free space on it, or choose another --out on a disk with room",
    "EDQUOT": "the disk quota is used up: free space within your quota, or choose another --out",
    "EACCES": "permission denied: change the folder's permissions, or choose another --out",
    "EPERM": "not permitted: change the folder's permissions, or choose another --out",
    "EROFS": "the file system is read-only: choose another --out",
    "EFBIG": "the file is too large for this file system: choose another --out",
}


def os_error_text(exc: OSError) -> str:
    """``strerror`` of an OSError (or its text when it has none)."""
    return exc.strerror or str(exc) or type(exc).__name__


def write_error_message(path: object, exc: OSError) -> str:
    """One line for a failed write of ``path``: the file, the system's reason, and what to free or change."""
    import errno

    name = errno.errorcode.get(exc.errno or 0, "")
    hint = _WRITE_HINTS.get(name, "check the path, its permissions and the free space")
    return f"{path}: cannot write ({os_error_text(exc)}); {hint}"


def os_error_exit_code(exc: OSError) -> int:
    """3 (an output problem) for a full, read-only or over-quota disk, else 2."""
    import errno

    return 3 if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG) else 2


def os_error_message(exc: OSError) -> str:
    """One line for an OSError no other handler turned into a CryopickError."""
    import errno

    name = errno.errorcode.get(exc.errno or 0, "")
    hint = _WRITE_HINTS.get(name, "check the path and its permissions")
    where = exc.filename if exc.filename is not None else "a file"
    return f"{where}: {os_error_text(exc)}; {hint}"
