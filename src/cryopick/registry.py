"""Helpers for the registries of named choices (losses, architectures, normalisations, schedules).

An entry is a frozen dataclass with at least ``name`` and ``help``; a registry is a dict
from name to entry, in the order the choices are shown.
"""

from __future__ import annotations

from typing import Protocol, TypeVar


class Entry(Protocol):
    name: str
    help: str


E = TypeVar("E", bound=Entry)


def by_name(*entries: E) -> dict[str, E]:
    """The registry of ``entries``, keyed by their names (each name once)."""
    registry = {e.name: e for e in entries}
    if len(registry) != len(entries):
        raise ValueError(f"a name is registered twice: {[e.name for e in entries]}")
    return registry


def help_text(registry: dict[str, Entry]) -> str:
    """``name: help; name: help`` for a CLI option's help."""
    return "; ".join(f"{e.name}: {e.help}" for e in registry.values())
