"""The fairness check: every variant's config is the base with one field set, and the configs
are diffed so that a variant differing in anything else is refused before anything trains."""

from __future__ import annotations

import copy
import math
from typing import Any

from ..config import RunConfig
from ..errors import InputError
from .fields import SELFTRAIN_MODE, Variation, resolve_field


def variant_configs(base: RunConfig, variation: Variation) -> dict[str, RunConfig]:
    """One config per variant: a copy of ``base`` with the varied field set (unchanged for 'selftrain')."""
    out = {}
    for name, value in zip(variation.names, variation.values):
        cfg = copy.deepcopy(base)
        if variation.path != SELFTRAIN_MODE:
            section, field = variation.path.split(".")
            setattr(getattr(cfg, section), field, copy.deepcopy(value))
        out[name] = cfg
    return out


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


_MISSING = object()


def differing_keys(configs: dict[str, RunConfig]) -> list[str]:
    """Dotted config keys (``train.lr``) whose value is not the same in every config."""
    flats = [flatten(c.to_dict()) for c in configs.values()]
    if not flats:
        return []
    keys = set().union(*flats)
    return sorted(k for k in keys
                  if any(not _same(f.get(k, _MISSING), flats[0].get(k, _MISSING)) for f in flats[1:]))


def within(key: str, path: str) -> bool:
    return key == path or key.startswith(path + ".")


def check_only_differs(configs: dict[str, RunConfig], field: str) -> None:
    """Refuse (InputError) unless the configs differ in nothing but ``field`` (plain or dotted).

    For the special field ``selftrain`` the configs may differ only inside the
    ``selftrain`` section (which supervised training ignores).
    """
    if len(configs) < 2:
        raise InputError("a comparison needs at least two variants")
    path = resolve_field(field)
    extra = [k for k in differing_keys(configs) if not within(k, path)]
    if extra:
        flats = {n: flatten(c.to_dict()) for n, c in configs.items()}
        k = extra[0]
        values = ", ".join(f"{n}: {flats[n].get(k)!r}" for n in configs)
        raise InputError(f"unfair comparison: the variants must differ only in {path} but also differ in "
                         f"{', '.join(extra)} ({k} is {values}); give every other setting once, for all variants")
