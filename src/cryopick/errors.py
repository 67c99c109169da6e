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
