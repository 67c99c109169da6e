"""Reading and writing micrographs: MRC, TIFF, PNG and JPEG, one 2D image per file.

Every reader returns a :class:`Micrograph` whose ``image`` is a float32 ``(H, W)``
array in the file's own pixel grid (row = y, column = x); nothing is normalised here.
"""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from cryopick.errors import InputError
from cryopick.io.atomic import atomic_path, atomic_write

__all__ = [
    "SUFFIXES",
    "MIN_SIDE",
    "Micrograph",
    "micrograph_stem",
    "read_micrograph",
    "find_micrographs",
    "write_mrc",
    "write_png",
]

SUFFIXES = (".mrc", ".mrcs", ".map", ".tif", ".tiff", ".png", ".jpg", ".jpeg")
MRC_SUFFIXES = (".mrc", ".mrcs", ".map")
TIFF_SUFFIXES = (".tif", ".tiff")
MIN_SIDE = 16
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2, as Pillow's "L"


@dataclass
class Micrograph:
    """One micrograph: ``image`` is float32 ``(H, W)``; ``pixel_size`` in Å/px when known."""

    name: str
    path: Path
    image: np.ndarray
    pixel_size: float | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)`` of the image."""
        return int(self.image.shape[0]), int(self.image.shape[1])


def micrograph_stem(name: str | os.PathLike[str]) -> str:
    """Key a micrograph by name: drop directories and every trailing micrograph suffix.

    ``"MotionCorr/job002/x_0.mrc"`` → ``"x_0"``, ``"a/b/img.png"`` → ``"img"`` (Windows
    separators too), ``"img.v2"`` → ``"img.v2"``.
    """
    text = os.fspath(name).strip()
    base = PureWindowsPath(PurePosixPath(text).name).name
    changed = True
    while changed:
        changed = False
        lower = base.lower()
        for suffix in SUFFIXES:
            if lower.endswith(suffix) and len(base) > len(suffix):
                base = base[: -len(suffix)]
                changed = True
                break
    return base


def _check_mrc_header(path: Path) -> None:
    """Reject non-MRC files before mrcfile tries to interpret a garbage header (slow, memory-hungry)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc}); check the path and permissions") from None
    if len(head) < 1024:
        raise InputError(
            f"{path}: not an MRC file (only {len(head)} bytes, shorter than the 1024-byte header); "
            "check the file is complete or convert it"
        )
    if head[208:212] != b"MAP ":
        raise InputError(
            f"{path}: not an MRC file (no 'MAP ' id in the header); check the file is complete or convert it to MRC"
        )


def _read_mrc(path: Path) -> tuple[np.ndarray, float | None]:
    import mrcfile

    _check_mrc_header(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with mrcfile.open(path, permissive=True) as mrc:
                header = mrc.header
                if bytes(header.map) != b"MAP ":
                    raise InputError(
                        f"{path}: not an MRC file (no 'MAP ' id in the header); check the file or convert it to MRC"
                    )
                if mrc.data is None:
                    problems = "; ".join(str(w.message) for w in caught) or "no data block"
                    raise InputError(
                        f"{path}: MRC file is truncated or corrupt ({problems}); re-export or re-copy the file"
                    )
                expected = (int(header.nz), int(header.ny), int(header.nx))
                data = np.asarray(mrc.data)
                if int(np.prod(data.shape)) != int(np.prod(expected)):
                    raise InputError(
                        f"{path}: MRC data shape {data.shape} does not match its header (nz, ny, nx) = "
                        f"{expected}; re-export the file"
                    )
                if np.iscomplexobj(data):
                    raise InputError(f"{path}: MRC holds complex (Fourier) data; give a real-space micrograph")
                image = np.array(data, dtype=np.float32)
                vx = float(mrc.voxel_size.x)
                pixel_size = vx if np.isfinite(vx) and vx > 0 else None
    except InputError:
        raise
    except (OSError, ValueError, TypeError, EOFError) as exc:
        raise InputError(f"{path}: not a readable MRC file ({exc}); check the file is complete or convert it") from None
    return image, pixel_size


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise InputError(f"{path}: TIFF file holds no image; check the file")
            series = tif.series[0]
            data = np.asarray(series.asarray())
            axes = series.axes
    except InputError:
        raise
    except Exception as exc:  # tifffile raises many types on corrupt input
        raise InputError(f"{path}: not a readable TIFF file ({exc}); check the file is complete or convert it") from None
    if "S" in axes and data.ndim == len(axes):
        s_axis = axes.index("S")
        data = np.moveaxis(data, s_axis, -1)
        if data.shape[-1] in (3, 4):
            data = data[..., :3].astype(np.float32) @ _LUMA
        elif data.shape[-1] == 2:  # gray + alpha
            data = data[..., 0]
        elif data.shape[-1] == 1:
            data = data[..., 0]
    if np.iscomplexobj(data):
        raise InputError(f"{path}: TIFF holds complex data; give a real-space micrograph")
    return np.asarray(data, dtype=np.float32)


def _read_pillow(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("I", "F") or mode.startswith("I;16"):
                data = np.asarray(img).astype(np.float32)
            elif mode in ("L", "1", "LA"):
                data = np.asarray(img.convert("L"), dtype=np.float32)
            else:  # P, RGB, RGBA, CMYK, YCbCr ... → luminance
                data = np.asarray(img.convert("RGB"), dtype=np.float32) @ _LUMA
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"{path}: not a readable image ({exc}); check the file is complete or convert it") from None
    return data


def _check_image(path: Path, data: np.ndarray, allow_constant: bool = False) -> np.ndarray:
    while data.ndim > 2 and data.shape[0] == 1:
        data = data[0]
    if data.ndim == 3:
        raise InputError(
            f"{path}: is a stack of {data.shape[0]} images; cryopick expects one 2D micrograph per file "
            "(split the stack or use the motion-corrected sum)"
        )
    if data.ndim != 2:
        raise InputError(f"{path}: image has shape {data.shape}; cryopick expects one 2D micrograph per file")
    h, w = data.shape
    if h < MIN_SIDE or w < MIN_SIDE:
        raise InputError(
            f"{path}: image is only {w}x{h} px; micrographs must be at least {MIN_SIDE} px on each side"
        )
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - np.count_nonzero(finite))
        raise InputError(
            f"{path}: {bad} pixel{' is' if bad == 1 else 's are'} NaN or infinite; re-export the micrograph or "
            "replace the bad pixels"
        )
    lo, hi = float(data.min()), float(data.max())
    if lo == hi and not allow_constant:
        raise InputError(f"{path}: is constant (all pixels = {lo:g}); it holds no signal")
    return np.ascontiguousarray(data, dtype=np.float32)


def read_micrograph(path: str | os.PathLike[str], allow_constant: bool = False) -> Micrograph:
    """Read one 2D micrograph (MRC, TIFF, PNG, JPEG) as float32; raise :class:`InputError` if unusable.

    ``allow_constant`` admits constant images (label masks may be empty).
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a micrograph; give a file (or use find_micrographs)")
    suffix = p.suffix.lower()
    pixel_size: float | None = None
    if suffix in MRC_SUFFIXES:
        data, pixel_size = _read_mrc(p)
    elif suffix in TIFF_SUFFIXES:
        data = _read_tiff(p)
    elif suffix in (".png", ".jpg", ".jpeg"):
        data = _read_pillow(p)
    else:
        raise InputError(
            f"{p}: unknown micrograph type '{p.suffix}'; use one of {', '.join(SUFFIXES)}"
        )
    image = _check_image(p, data, allow_constant)
    return Micrograph(name=micrograph_stem(p.name), path=p, image=image, pixel_size=pixel_size)


def _is_micrograph_file(p: Path) -> bool:
    # hidden files are skipped: ".<name>.<hex>.tmp.mrc" is what an interrupted atomic write leaves behind
    return p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SUFFIXES


def find_micrographs(specs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand files, directories (non-recursive) and glob patterns into a sorted list of micrographs.

    Hidden files (name starting with ".") in directories and patterns are skipped, so the
    temporary file of an interrupted write is never taken for a micrograph.

    Raises :class:`InputError` when a spec matches nothing, when two files share a stem
    (labels are keyed by stem), or when the result is empty.
    """
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    found: dict[Path, Path] = {}
    for spec in specs:
        text = os.fspath(spec)
        p = Path(text)
        if p.is_dir():
            matches = sorted(q for q in p.iterdir() if _is_micrograph_file(q))
            if not matches:
                raise InputError(
                    f"{p}: no micrographs ({', '.join(SUFFIXES)}) in this directory; check the path"
                )
        elif p.is_file():
            if p.suffix.lower() not in SUFFIXES:
                raise InputError(
                    f"{p}: unknown micrograph type '{p.suffix}'; use one of {', '.join(SUFFIXES)}"
                )
            matches = [p]
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True) if _is_micrograph_file(Path(m)))
            if not matches:
                raise InputError(f"{text}: pattern matches no micrographs ({', '.join(SUFFIXES)}); check the pattern")
        else:
            raise InputError(f"{text}: no such file or directory; check the path")
        for m in matches:
            found.setdefault(m.resolve(), m)
    paths = sorted(found.values(), key=lambda q: (q.name, str(q)))
    if not paths:
        raise InputError("no micrographs given; pass micrograph files, folders or glob patterns")
    by_stem: dict[str, Path] = {}
    for q in paths:
        stem = micrograph_stem(q.name)
        if stem in by_stem:
            raise InputError(
                f"{q}: has the same name stem '{stem}' as {by_stem[stem]}; micrograph stems must be unique "
                "(pass only one kind, e.g. 'folder/*.mrc')"
            )
        by_stem[stem] = q
    return paths


def write_mrc(path: str | os.PathLike[str], array: np.ndarray, pixel_size: float | None = None) -> Path:
    """Atomically write ``array`` as a float32 MRC file, with ``pixel_size`` (Å/px) as voxel size."""
    import mrcfile

    data = np.ascontiguousarray(array, dtype=np.float32)
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(data)
            if pixel_size is not None:
                mrc.voxel_size = float(pixel_size)
    return Path(path)


def write_png(
    path: str | os.PathLike[str],
    array: np.ndarray,
    vmin: float | None = None,
    vmax: float | None = None,
) -> Path:
    """Atomically write a 2D array as an 8-bit PNG, mapping ``[vmin, vmax]`` (default: min/max) to 0..255."""
    from PIL import Image

    data = np.asarray(array, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"write_png expects a 2D array, got shape {data.shape}")
    finite = data[np.isfinite(data)]
    lo = float(vmin) if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = float(vmax) if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if hi > lo:
        scaled = (data - lo) / (hi - lo) * 255.0
    else:
        scaled = np.zeros_like(data)
    pixels = np.clip(np.nan_to_num(scaled, nan=0.0), 0, 255).round().astype(np.uint8)
    with atomic_write(path, "wb") as fh:
        Image.fromarray(pixels).save(fh, format="PNG")
    return Path(path)
