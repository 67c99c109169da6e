"""Preprocessed training sets on disk, in the seeds' layout::

    <dir>/images.zarr   float32 array (N, H, W)
    <dir>/masks.zarr    float32 array (N, H, W)
    <dir>/names.json    list of N micrograph stems
    <dir>/meta.json     free-form dict (radius, downsample, normalisation, ...)

Works with zarr 2 and zarr 3. Arrays are written in zarr format 2 (which both
versions read), one chunk per micrograph. A dataset is built in a temporary sibling
folder and moved into place, so an interrupted write never leaves a half dataset.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cryopick.errors import InputError, OutputError
from cryopick.io.atomic import atomic_write_json, ensure_out_dir

__all__ = ["write_zarr_dataset", "read_zarr_dataset", "is_zarr_dataset"]

_PARTS = ("images.zarr", "masks.zarr", "names.json", "meta.json")


def _zarr_major() -> int:
    import zarr

    return int(str(zarr.__version__).split(".")[0])


def _create_array(path: Path, data: np.ndarray) -> None:
    import zarr

    kwargs: dict[str, Any] = {
        "mode": "w",
        "shape": data.shape,
        "chunks": (1,) + tuple(data.shape[1:]),
        "dtype": "float32",
    }
    if _zarr_major() >= 3:
        kwargs["zarr_format"] = 2
    arr = zarr.open_array(str(path), **kwargs)
    if data.shape[0]:
        arr[...] = data


def _stack(
    out_dir: Path, what: str, arrays: Sequence[np.ndarray] | np.ndarray, names: Sequence[str]
) -> np.ndarray:
    """Stack 2D arrays into float32 (N, H, W); raise InputError if sizes differ."""
    if isinstance(arrays, np.ndarray):
        if arrays.ndim != 3:
            raise InputError(f"{out_dir}: {what} must be an (N, H, W) array, got shape {arrays.shape}")
        return np.ascontiguousarray(arrays, dtype=np.float32)
    items = [np.asarray(a) for a in arrays]
    for i, a in enumerate(items):
        if a.ndim != 2:
            raise InputError(f"{out_dir}: {what} of '{names[i]}' has shape {a.shape}; expected a 2D array")
        if a.shape != items[0].shape:
            raise InputError(
                f"{out_dir}: micrographs differ in size ('{names[0]}' is {items[0].shape[1]}x{items[0].shape[0]}, "
                f"'{names[i]}' is {a.shape[1]}x{a.shape[0]}); crop or pad them to a common size first"
            )
    if not items:
        return np.zeros((0, 0, 0), dtype=np.float32)
    return np.stack(items).astype(np.float32, copy=False)


def write_zarr_dataset(
    out_dir: str | os.PathLike[str],
    images: Sequence[np.ndarray] | np.ndarray,
    masks: Sequence[np.ndarray] | np.ndarray,
    names: Sequence[str],
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write images, masks, names and meta as a zarr dataset at ``out_dir`` (replacing an old one)."""
    out = Path(out_dir)
    names = [str(n) for n in names]
    img = _stack(out, "images", images, names)
    msk = _stack(out, "masks", masks, names)
    if img.shape[0] == 0:
        raise InputError(f"{out}: no micrographs to write; give at least one image")
    if img.shape != msk.shape:
        raise InputError(
            f"{out}: images {img.shape} and masks {msk.shape} differ in shape; make one mask per image, same size"
        )
    if len(names) != img.shape[0]:
        raise InputError(f"{out}: {img.shape[0]} images but {len(names)} names; give one name per image")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"{out}: duplicate micrograph names ({', '.join(dup[:3])}); names must be unique")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a directory; choose another output folder")
    if out.is_dir() and any(out.iterdir()) and not is_zarr_dataset(out):
        raise OutputError(
            f"{out}: folder exists, is not empty and is not a cryopick dataset; choose an empty or new folder"
        )
    parent = ensure_out_dir(out.parent)
    tmp = parent / f".{out.name}.{secrets.token_hex(4)}.tmp"
    old = parent / f".{out.name}.{secrets.token_hex(4)}.old"
    try:
        tmp.mkdir()
        _create_array(tmp / "images.zarr", img)
        _create_array(tmp / "masks.zarr", msk)
        atomic_write_json(tmp / "names.json", names)
        atomic_write_json(tmp / "meta.json", dict(meta or {}))
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            os.replace(old, out)
        raise OutputError(f"{out}: cannot write the dataset ({exc.strerror or exc}); check permissions and free space") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return out


def is_zarr_dataset(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a folder with ``images.zarr``, ``masks.zarr`` and ``names.json``."""
    p = Path(path)
    return p.is_dir() and (p / "images.zarr").is_dir() and (p / "masks.zarr").is_dir() and (p / "names.json").is_file()


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable JSON ({exc}); rebuild the dataset") from None


def _open(path: Path) -> np.ndarray:
    import zarr

    try:
        arr = zarr.open_array(str(path), mode="r")
        data = np.asarray(arr[...], dtype=np.float32)
    except Exception as exc:  # zarr raises assorted types on damaged stores
        raise InputError(f"{path}: unreadable zarr array ({exc}); rebuild the dataset") from None
    if data.ndim != 3:
        raise InputError(f"{path}: expected an (N, H, W) array, found shape {data.shape}; rebuild the dataset")
    return data


def read_zarr_dataset(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, Any]]:
    """Load a dataset written by :func:`write_zarr_dataset`: ``(images, masks, names, meta)``."""
    p = Path(path)
    if not p.is_dir():
        raise InputError(f"{p}: no such dataset folder; check the path or build the dataset first")
    missing = [part for part in _PARTS[:3] if not (p / part).exists()]
    if missing:
        raise InputError(f"{p}: not a cryopick dataset (missing {', '.join(missing)}); build the dataset first")
    images, masks = _open(p / "images.zarr"), _open(p / "masks.zarr")
    if images.shape != masks.shape:
        raise InputError(
            f"{p}: images {images.shape} and masks {masks.shape} differ in shape; rebuild the dataset"
        )
    names = _load_json(p / "names.json")
    if not isinstance(names, list) or len(names) != images.shape[0]:
        count = len(names) if isinstance(names, list) else "no list of"
        raise InputError(f"{p}: names.json has {count} names for {images.shape[0]} images; rebuild the dataset")
    meta = _load_json(p / "meta.json") if (p / "meta.json").exists() else {}
    if not isinstance(meta, dict):
        raise InputError(f"{p / 'meta.json'}: expected a JSON object; rebuild the dataset")
    return images, masks, [str(n) for n in names], meta
