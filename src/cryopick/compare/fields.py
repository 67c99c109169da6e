"""``--vary FIELD=V1,V2``: which config field a name means, and its values parsed to the field's type.

The text settings with a fixed set of values take them from the registries that define
them (``models.ARCHITECTURES``, ``losses.LOSS_CHOICES``, ``schedulers.SCHEDULERS``,
``preprocess.NORMALIZATIONS``, ``io.formats.FORMATS``), so ``compare`` accepts exactly
what the command line does. Fields a comparison never reads are refused (:data:`UNMEASURED`).
"""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from ..config import PICK_SCORES, RunConfig
from ..errors import InputError
from ..io.formats import FORMATS as LABEL_FORMATS
from ..losses import LOSS_CHOICES
from ..models import ARCHITECTURES
from ..preprocess import NORMALIZATIONS
from ..schedulers import SCHEDULERS

SECTIONS = ("data", "model", "train", "selftrain", "pick")
SELFTRAIN_MODE = "selftrain"  # the special field: supervised (off) vs self-training (on)
TRUE_WORDS = ("on", "true", "yes", "1")
FALSE_WORDS = ("off", "false", "no", "0")
NONE_WORDS = ("none", "null", "auto")
SEQ_SEP = ":"  # list / pair values: star:box, 0.98:0.02 (',' separates the variants)
CHOICES = {
    "model.arch": tuple(ARCHITECTURES),
    "train.loss": LOSS_CHOICES,
    "selftrain.retrain_loss": LOSS_CHOICES,
    "train.scheduler": tuple(SCHEDULERS),
    "data.normalize": tuple(NORMALIZATIONS),
    "data.label_format": tuple(LABEL_FORMATS),
    "pick.score": PICK_SCORES,
}
_ONLY_PICK_FILES = "it only changes the files `cryopick pick` writes"
#: Fields no step of a comparison reads (training, calibration and the particle metrics, which
#: sweep every score threshold), so their variants would be the same run twice: refused.
UNMEASURED = {
    "pick.threshold": "the particle F1/AP are measured over every score threshold",
    "pick.formats": _ONLY_PICK_FILES,
    "pick.box_size": _ONLY_PICK_FILES,
    "pick.exclude_edge": _ONLY_PICK_FILES,
    "pick.pixel_size": _ONLY_PICK_FILES,
    "pick.progress_seconds": "it only paces `cryopick pick`'s progress lines",
    "pick.poll_seconds": "it only acts in `cryopick pick --watch`",
    "pick.idle_timeout": "it only acts in `cryopick pick --watch`",
    "pick.downsample": "the validation micrographs are preprocessed once, at the training downsampling; "
                       "vary data.downsample",
}


def _section_types(section: str) -> dict[str, Any]:
    return typing.get_type_hints(type(getattr(RunConfig(), section)))


def _all_paths() -> list[str]:
    return [f"{s}.{name}" for s in SECTIONS for name in _section_types(s)]


def resolve_field(field: str) -> str:
    """The config path (``section.field``) a --vary FIELD names, or ``"selftrain"`` (the special switch).

    Plain names are looked up in every section; a name that is also a picking option
    (``batch_size``, ``tile_size``, ``downsample``) means the training one: write
    ``pick.NAME`` for the other. Dashes count as underscores.
    """
    f = field.strip().replace("-", "_")
    if f == SELFTRAIN_MODE:
        return SELFTRAIN_MODE
    if "." in f:
        section, _, name = f.partition(".")
        if section in SECTIONS and name in _section_types(section):
            return f"{section}.{name}"
    else:
        found = [s for s in SECTIONS if f in _section_types(s)]
        if len(found) > 1:
            found = [s for s in found if s != "pick"]
        if found:
            return f"{found[0]}.{f}"
    known = _all_paths()
    close = difflib.get_close_matches(f, known + [p.split(".")[1] for p in known] + [SELFTRAIN_MODE], n=3)
    hint = (f"; did you mean {', '.join(close)}?" if close
            else "; use a config field such as arch, loss, augment, train.lr")
    raise InputError(f"--vary: unknown field {field!r}{hint}")


def _field_hint(path: str) -> Any:
    if path == SELFTRAIN_MODE:
        return bool
    section, name = path.split(".")
    return _section_types(section)[name]


def _convert(hint: Any, text: str, path: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if type(None) in args and text.lower() in NONE_WORDS:
            return None
        return _convert(inner[0], text, path)
    if origin in (list, tuple):
        parts = [p.strip() for p in text.split(SEQ_SEP)] if text else []
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(parts) != len(args):
                raise InputError(f"--vary {path}: {text!r} needs {len(args)} values joined by '{SEQ_SEP}'")
            return tuple(_convert(a, p, path) for a, p in zip(args, parts))
        elem = args[0] if args else str
        return origin(_convert(elem, p, path) for p in parts)
    if hint is bool:
        low = text.lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
        raise InputError(f"--vary {path}: {text!r} is not on/off (use on, off, true, false, yes or no)")
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise InputError(f"--vary {path}: {text!r} is not a whole number") from None
    if hint is float:
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"--vary {path}: {text!r} is not a number") from None
        if not math.isfinite(value):
            raise InputError(f"--vary {path}: {text!r} is not a finite number")
        return value
    if hint is str:
        choices = CHOICES.get(path)
        if choices is not None and text not in choices:
            raise InputError(f"--vary {path}: {text!r} is not one of {', '.join(choices)}")
        return text
    raise InputError(f"--vary {path}: settings of type {hint} cannot be varied")


def parse_value(field: str, text: str) -> Any:
    """``text`` converted to the type of config field ``field`` (plain or dotted name).

    bool: on/off/true/false/yes/no; int; float; str (checked against the known choices);
    optional settings also take ``none``/``auto``; lists and pairs join items with ':'.
    """
    return _convert(_field_hint(resolve_field(field)), text.strip(), resolve_field(field))


def display(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "auto"
    if isinstance(value, (list, tuple)):
        return SEQ_SEP.join(display(v) for v in value)
    return str(value)


@dataclass
class Variation:
    """One varied setting: its config path, the parsed values and the variants' names."""

    field: str  # as given
    path: str  # "model.arch" ..., or "selftrain" (supervised vs self-training)
    values: list[Any]
    names: list[str]

    @property
    def section(self) -> str:
        return self.path.split(".")[0]

    def mode(self, value: Any) -> str:
        """'selftrain' or 'train': which pipeline a variant with ``value`` runs."""
        if self.path == SELFTRAIN_MODE:
            return "selftrain" if value else "train"
        return "selftrain" if self.section == "selftrain" else "train"


def parse_vary(spec: str) -> Variation:
    """``FIELD=V1,V2[,...]`` -> :class:`Variation` (at least two distinct values).

    Variants of a text setting are named by their value (``unet``); others by
    ``field=value`` (``augment=off``, ``lr=0.001``), which is also their run folder.
    """
    field, eq, rest = spec.partition("=")
    if not eq or not field.strip():
        raise InputError(f"--vary {spec!r}: expected FIELD=V1,V2 (e.g. arch=unet,attention-unet)")
    path = resolve_field(field)
    if path in UNMEASURED:
        raise InputError(f"--vary {path}: a comparison never reads this setting ({UNMEASURED[path]}); "
                         "vary one that changes training or the measured picks")
    hint = _field_hint(path)
    tokens = [t.strip() for t in rest.split(",")]
    if len(tokens) < 2 or any(not t for t in tokens):
        raise InputError(f"--vary {spec!r}: give two or more comma-separated values (e.g. {field.strip()}=A,B)")
    values = [_convert(hint, t, path) for t in tokens]
    for i, v in enumerate(values):
        if v in values[:i]:
            raise InputError(f"--vary {spec!r}: value {tokens[i]!r} is given twice")
    leaf = path.split(".")[-1]
    names = []
    for t, v in zip(tokens, values):
        raw = t if hint is str else f"{leaf}={display(v) if isinstance(v, bool) else t}"
        name = re.sub(r"[^A-Za-z0-9._=+-]", "_", raw)
        if name.startswith("."):
            name = "_" + name
        if name in names:
            raise InputError(f"--vary {spec!r}: values {t!r} and another give the same folder name {name!r}")
        names.append(name)
    return Variation(field.strip(), path, values, names)


def parse_seeds(text: str) -> list[int]:
    """``"42,43"`` -> [42, 43] (distinct whole numbers)."""
    try:
        seeds = [int(t) for t in text.split(",")]
    except ValueError:
        raise InputError(f"--seeds {text!r}: expected comma-separated whole numbers, e.g. 42,43,44") from None
    if len(set(seeds)) != len(seeds):
        raise InputError(f"--seeds {text!r}: a seed is given twice")
    return seeds
