"""The output folder of a command: locked while it writes, never silently replaced.

Under torchrun every rank checks (they all see the folder as it was: nothing is written
before the ranks meet), and only rank 0 locks, removes and renames.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError, OutputError
from ..io.outdir import (
    RUN_OUTPUTS,
    earlier_outputs,
    folder_lock,
    listing,
    matcher,
    replace_folder,
)


def add_overwrite(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace {what} in OUT (default: stop when OUT holds {what})")


@contextlib.contextmanager
def run_folder(out: str, command: str, resume: bool, overwrite: bool) -> Iterator[Path]:
    """The locked run folder of ``train`` / ``selftrain``: one holding an earlier run needs
    ``--resume`` (continue it) or ``--overwrite`` (the caller clears it once its inputs are read)."""
    if resume and overwrite:
        raise InputError("--resume continues the run in --out and --overwrite replaces it; pass one of them")
    with folder_lock(out, command) as folder:
        earlier = earlier_outputs(folder, matcher(RUN_OUTPUTS))
        if earlier and not (resume or overwrite):
            raise OutputError(f"{folder}: holds an earlier run ({listing(earlier)}); pass --resume to continue it, "
                              "--overwrite to replace it, or another --out")
        yield folder


@contextlib.contextmanager
def output_folder(out: str, command: str, overwrite: bool, outputs: list[str]) -> Iterator[Path]:
    """The locked output folder of ``pick`` / ``predict``: yields where to write.

    A folder holding earlier outputs needs ``--overwrite``; then the whole new output set
    is written into a sibling folder that replaces ``out`` when the command succeeds.
    """
    known = matcher(outputs)
    with folder_lock(out, command) as folder:
        earlier = earlier_outputs(folder, known)
        if not earlier:
            yield folder
            return
        if not overwrite:
            raise OutputError(f"{folder}: holds earlier outputs ({listing(earlier)}); pass --overwrite to "
                              "replace them all, or choose another --out")
        here = Path.cwd().resolve()
        if here == folder.resolve() or folder.resolve() in here.parents:
            raise OutputError(f"{folder}: --overwrite replaces the whole folder, and this command runs inside it; "
                              "run it from another folder, or choose another --out")
        others = earlier_outputs(folder, lambda name: not known(name))
        if others:
            raise OutputError(f"{folder}: --overwrite replaces the whole folder, but it also holds "
                              f"{listing(others)}, which cryopick {command} does not write; move that out, "
                              "or choose another --out")
        with replace_folder(folder) as staging:
            yield staging
