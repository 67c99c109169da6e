"""Pairing label names with micrographs across cryoSPARC's UID prefixes.

cryoSPARC names the micrographs it imports ``<UID>_<name>`` with a UID of about 20
digits (``J12/imported/012345678901234567890_mic.mrc``). A label name matches a
micrograph exactly, or else once such a prefix (15 or more digits, then ``_``) is
dropped from either name; shorter digit runs (dates, counters) are names, not UIDs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import TypeVar

from cryopick.errors import InputError

__all__ = ["strip_uid", "align_names"]

T = TypeVar("T")
_UID_PREFIX = re.compile(r"(\d{15,})_(.+)")


def strip_uid(stem: str) -> str:
    """``stem`` without cryoSPARC's UID prefix (15 or more digits, then ``_``); others unchanged."""
    m = _UID_PREFIX.fullmatch(stem)
    return m.group(2) if m else stem


def align_names(labels: dict[str, T], stems: Iterable[str], source: str | os.PathLike[str] = "labels") -> dict[str, str]:
    """Rename (in place, keeping the order) label entries that name one of the micrographs
    ``stems`` only once cryoSPARC's UID prefix is dropped from either name; return ``{old: new}``.

    Exact names always win. Two entries that would both become one micrograph are an
    :class:`InputError` (two cryoSPARC imports of micrographs of the same name).
    """
    stems = list(stems)
    exact = set(stems)
    plain: dict[str, list[str]] = {}
    for s in stems:
        plain.setdefault(strip_uid(s), []).append(s)
    renames: dict[str, str] = {}
    for key in labels:
        if key in exact:
            continue
        candidates = [s for s in plain.get(strip_uid(key), []) if s not in labels]
        if len(candidates) == 1:
            renames[key] = candidates[0]
    by_target: dict[str, list[str]] = {}
    for old, new in renames.items():
        by_target.setdefault(new, []).append(old)
    for new, olds in by_target.items():
        if len(olds) > 1:
            both = ", ".join(olds)
            raise InputError(f"{os.fspath(source)}: {both} all name micrograph '{new}' once cryoSPARC's UID "
                             "prefixes are dropped; keep the labels of one of them")
    if renames:
        items = [(renames.get(k, k), v) for k, v in labels.items()]
        labels.clear()
        labels.update(items)
    return renames
