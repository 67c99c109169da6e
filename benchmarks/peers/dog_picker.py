#!/usr/bin/env python3
"""Difference-of-Gaussians (DoG) blob picker: a training-free benchmark peer.

The idea behind DoGPicker and the blob pickers of cryoSPARC and RELION: a
particle is a blob of roughly known radius, so band-pass the micrograph with a
DoG matched to that radius and take the local maxima of the response.  This is
an independent, minimal implementation (numpy / scipy / scikit-image only); it
is not part of cryopick and does not import it.

Method (all lengths in pixels; ``r`` = particle radius):

1. Normalise: subtract the median, divide by the robust std (1.4826 * MAD).
2. Optional integer downsampling by block averaging (``downsample=None`` picks a
   factor so that the particle is ~``target_diameter`` = 20 px across).
3. DoG matched to the radius.  A disk of radius ``r`` gives its strongest
   Laplacian-of-Gaussian response at ``sigma = r / sqrt(2)``; the DoG
   ``G(sigma1) - G(sigma2)`` with ``sigma2 = k * sigma1`` approximates a LoG at the
   geometric mean ``sqrt(sigma1 * sigma2)``, so ``sigma1 = r / sqrt(2) / sqrt(k)``,
   ``sigma2 = r / sqrt(2) * sqrt(k)`` with ``k = 1.6`` (Marr-Hildreth ratio).
   ``sigma_scale`` multiplies both.
4. Polarity: in typical cryo-EM micrographs particles are darker than the ice
   (``polarity="dark"``, response ``G(sigma2) - G(sigma1)``); ``"bright"`` flips the
   sign; ``"auto"`` picks the sign whose response map has the heavier positive
   tail (positive skewness of the polarity-corrected response).
5. The response is divided by its robust std (so scores are in "noise sigmas"
   and comparable between micrographs), then local maxima at least
   ``min_distance`` apart (default: ``r``) with score > ``threshold`` are the picks;
   peaks within ``border_px`` of the edge (default ``r``) are dropped.
6. Peaks are refined to sub-pixel precision (parabola through the peak and its
   neighbours, per axis) and mapped back to original pixels (block ``k`` of size ``f`` has
   its centre at ``k * f + (f - 1) / 2``).

Coordinates are ``(x, y)`` = ``(column, row)``, 0-based, integers at pixel centres.

API: :func:`dog_pick` (one image), :func:`estimate_polarity`,
:func:`auto_downsample`, :func:`read_micrograph`, :func:`write_picks_tsv`.

CLI::

    python benchmarks/peers/dog_picker.py MIC [MIC ...] --radius 16 \\
        [--downsample auto|N] [--polarity dark|bright|auto] [--min-distance PX] \\
        [--threshold T] --out picks.tsv [--timing timing.json]

writes a Topaz-style TSV ``image_name x_coord y_coord score`` (original pixels,
image_name = file stem).  ``--polarity auto`` decides once for the whole set by
majority vote over the micrographs.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from topaz_exec import write_picks_tsv  # noqa: E402  (one TSV writer for both peers)

K_RATIO = 1.6
TARGET_DIAMETER = 20.0

__all__ = [
    "auto_downsample",
    "dog_pick",
    "dog_response",
    "estimate_polarity",
    "read_micrograph",
    "write_picks_tsv",
]


def _robust_std(a: np.ndarray) -> float:
    med = np.median(a)
    s = 1.4826 * float(np.median(np.abs(a - med)))
    if not np.isfinite(s) or s <= 0:
        s = float(np.std(a))
    return s if s > 0 else 1.0


def auto_downsample(radius_px: float, target_diameter: float = TARGET_DIAMETER) -> int:
    """Integer factor that brings the particle diameter to ~``target_diameter`` px."""
    return max(1, int(round(2.0 * float(radius_px) / target_diameter)))


def _block_mean(img: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return img
    h, w = (img.shape[0] // f) * f, (img.shape[1] // f) * f
    return img[:h, :w].reshape(h // f, f, w // f, f).mean(axis=(1, 3))


def _prepare(image, downsample: int) -> np.ndarray:
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3 and img.shape[0] == 1:
        img = img[0]
    if img.ndim != 2:
        raise ValueError(f"expected a 2-D micrograph, got shape {img.shape}")
    img = img - np.float32(np.median(img))
    img /= np.float32(_robust_std(img))
    return _block_mean(img, int(downsample))


def _sigmas(radius_ds: float, sigma_scale: float, k: float) -> tuple[float, float]:
    s = max(radius_ds / math.sqrt(2.0), 0.5) * sigma_scale
    return s / math.sqrt(k), s * math.sqrt(k)


def dog_response(image, radius_px: float, downsample: int = 1, sigma_scale: float = 1.0,
                 k: float = K_RATIO) -> np.ndarray:
    """Raw ``G(sigma1) - G(sigma2)`` of the normalised, downsampled image (bright-positive)."""
    img = _prepare(image, downsample)
    s1, s2 = _sigmas(float(radius_px) / downsample, sigma_scale, k)
    return ndimage.gaussian_filter(img, s1, mode="reflect") - ndimage.gaussian_filter(img, s2, mode="reflect")


def _polarity_of(response: np.ndarray) -> str:
    d = response - response.mean()
    sd = d.std()
    if sd == 0:
        return "dark"
    skew = float(np.mean(d**3) / sd**3)
    return "bright" if skew > 0 else "dark"


def estimate_polarity(image, radius_px: float, downsample: int | None = None) -> str:
    """"dark" or "bright": the sign in which particle blobs form the heavy tail."""
    if downsample is None:
        downsample = auto_downsample(radius_px)
    return _polarity_of(dog_response(image, radius_px, downsample))


def dog_pick(
    image: np.ndarray,
    radius_px: float,
    downsample: int | None = 1,
    polarity: str = "dark",
    min_distance: float | None = None,
    threshold: float = -np.inf,
    *,
    border_px: float | None = None,
    sigma_scale: float = 1.0,
    k: float = K_RATIO,
    max_picks: int | None = None,
    subpixel: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Pick blobs of radius ``radius_px`` (original pixels) in ``image``.

    Parameters
    ----------
    image : 2-D array (any dtype; a leading axis of length 1 is dropped).
    radius_px : particle radius in original pixels.
    downsample : integer block-averaging factor; ``None`` = :func:`auto_downsample`.
    polarity : "dark" (particles darker than background, usual cryo-EM contrast),
        "bright" or "auto" (:func:`estimate_polarity` on this image).
    min_distance : minimum distance between picks, original pixels (default
        ``radius_px``).
    threshold : keep peaks with score > threshold (scores are DoG responses in
        units of the response map's robust std); ``-inf`` keeps every local max.
    border_px : drop picks closer than this to the edge, original pixels
        (default ``radius_px``).
    sigma_scale, k : DoG sigmas ``r/sqrt(2)*sigma_scale / sqrt(k)`` and ``* sqrt(k)``.
    max_picks : keep only the highest-scoring ones.
    subpixel : refine each peak by a 1-D parabola fit along x and along y (in the
        downsampled grid), clipped to +-0.5 px.

    Returns ``(xy, scores)``: ``(N, 2)`` float64 ``(x, y)`` in original pixels and
    ``(N,)`` float64 scores, sorted by decreasing score.
    """
    from skimage.feature import peak_local_max

    radius_px = float(radius_px)
    if radius_px <= 0:
        raise ValueError("radius_px must be > 0")
    f = auto_downsample(radius_px) if downsample is None else int(downsample)
    if f < 1:
        raise ValueError("downsample must be >= 1")
    resp = dog_response(image, radius_px, f, sigma_scale, k)
    if polarity == "auto":
        polarity = _polarity_of(resp)
    if polarity == "dark":
        resp = -resp
    elif polarity != "bright":
        raise ValueError("polarity must be 'dark', 'bright' or 'auto'")
    resp /= np.float32(_robust_std(resp))

    md = radius_px if min_distance is None else float(min_distance)
    md_ds = max(1, int(round(md / f)))
    border = radius_px if border_px is None else float(border_px)
    border_ds = max(0, int(math.ceil(border / f - 0.5)))
    rc = peak_local_max(
        resp,
        min_distance=md_ds,
        threshold_abs=float(threshold) if np.isfinite(threshold) else -np.inf,
        exclude_border=border_ds if border_ds > 0 else False,
        num_peaks=np.inf if max_picks is None else int(max_picks),
        p_norm=2,
    )
    if rc.size == 0:
        return np.zeros((0, 2)), np.zeros(0)
    scores = resp[rc[:, 0], rc[:, 1]].astype(np.float64)
    order = np.argsort(-scores, kind="stable")
    rc, scores = rc[order], scores[order]
    rows, cols = rc[:, 0].astype(np.float64), rc[:, 1].astype(np.float64)
    if subpixel:
        rows = rows + _parabola_offset(resp, rc, axis=0)
        cols = cols + _parabola_offset(resp, rc, axis=1)
    off = (f - 1) / 2.0
    xy = np.stack([cols * f + off, rows * f + off], axis=1)
    return xy, scores


def _parabola_offset(resp: np.ndarray, rc: np.ndarray, axis: int) -> np.ndarray:
    """Vertex offset of the parabola through the peak and its two neighbours."""
    n = resp.shape[axis]
    i = rc[:, axis]
    ok = (i > 0) & (i < n - 1)
    lo, hi = rc.copy(), rc.copy()
    lo[:, axis] = np.clip(i - 1, 0, n - 1)
    hi[:, axis] = np.clip(i + 1, 0, n - 1)
    a = resp[lo[:, 0], lo[:, 1]].astype(np.float64)
    b = resp[rc[:, 0], rc[:, 1]].astype(np.float64)
    c = resp[hi[:, 0], hi[:, 1]].astype(np.float64)
    den = a - 2.0 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(ok & (den < 0), 0.5 * (a - c) / den, 0.0)
    return np.clip(d, -0.5, 0.5)


# ----------------------------------------------------------------------------
# I/O + CLI
# ----------------------------------------------------------------------------

def read_micrograph(path) -> np.ndarray:
    """2-D float32 array from .mrc/.mrcs (single section), .tif/.tiff, .png/.jpg."""
    path = Path(path)
    suf = path.suffix.lower()
    if suf in (".mrc", ".mrcs", ".map"):
        import mrcfile

        with mrcfile.open(str(path), permissive=True) as m:
            a = np.asarray(m.data, dtype=np.float32)
    elif suf in (".tif", ".tiff"):
        import tifffile

        a = np.asarray(tifffile.imread(str(path)), dtype=np.float32)
    elif suf == ".npy":
        a = np.load(path).astype(np.float32)
    else:
        from PIL import Image

        with Image.open(path) as im:
            if im.mode not in ("L", "I", "I;16", "F"):
                im = im.convert("L")
            a = np.asarray(im, dtype=np.float32)
    a = np.squeeze(a)
    if a.ndim != 2:
        raise ValueError(f"{path}: expected one 2-D micrograph, got shape {a.shape}")
    return a


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Difference-of-Gaussians blob picker (benchmark peer)",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("mics", nargs="+", type=Path, help="micrographs (.mrc/.tif/.png/.jpg)")
    ap.add_argument("--radius", type=float, required=True, help="particle radius, original px")
    ap.add_argument("--downsample", default="auto", help="integer factor or 'auto' (~20 px particles)")
    ap.add_argument("--polarity", default="dark", choices=["dark", "bright", "auto"])
    ap.add_argument("--min-distance", type=float, help="original px (default: radius)")
    ap.add_argument("--border", type=float, help="drop picks this close to the edge (default: radius)")
    ap.add_argument("--threshold", type=float, default=-np.inf)
    ap.add_argument("--sigma-scale", type=float, default=1.0)
    ap.add_argument("--max-picks", type=int, help="per micrograph")
    ap.add_argument("--no-subpixel", action="store_true", help="integer-grid peaks only")
    ap.add_argument("--out", type=Path, required=True, help="picks TSV")
    ap.add_argument("--timing", type=Path, help="write timing JSON here")
    a = ap.parse_args(argv)

    f = auto_downsample(a.radius) if a.downsample == "auto" else int(a.downsample)
    stems = [m.stem for m in a.mics]
    if len(set(stems)) != len(stems):
        ap.error("micrograph file stems must be unique")

    t0 = time.perf_counter()
    images = {m.stem: read_micrograph(m) for m in a.mics}
    t_read = time.perf_counter() - t0

    polarity = a.polarity
    votes = None
    if polarity == "auto":
        votes = [estimate_polarity(img, a.radius, f) for img in images.values()]
        polarity = max(("dark", "bright"), key=votes.count)

    t1 = time.perf_counter()
    picks = {
        stem: dog_pick(img, a.radius, f, polarity, a.min_distance, a.threshold,
                       border_px=a.border, sigma_scale=a.sigma_scale, max_picks=a.max_picks,
                       subpixel=not a.no_subpixel)
        for stem, img in images.items()
    }
    t_pick = time.perf_counter() - t1
    write_picks_tsv(picks, a.out)
    info = {
        "n_mics": len(images),
        "downsample": f,
        "polarity": polarity,
        "polarity_votes": None if votes is None else {p: votes.count(p) for p in ("dark", "bright")},
        "read_seconds": t_read,
        "pick_seconds_per_mic": t_pick / max(1, len(images)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "n_picks": {k: int(len(v[1])) for k, v in picks.items()},
    }
    if a.timing:
        a.timing.parent.mkdir(parents=True, exist_ok=True)
        a.timing.write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps({k: info[k] for k in ("n_mics", "downsample", "polarity", "pick_seconds_per_mic")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
