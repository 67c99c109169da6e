"""Augmented copies of one patch, and a figure of them for the report."""

from __future__ import annotations

import contextlib
import os
from numbers import Integral
from pathlib import Path

import numpy as np

from cryopick.errors import InputError, OutputError

from .base import Transform, _prepare
from .compose import CryoEMAugmentation


def augmentation_examples(
    image: np.ndarray,
    mask: np.ndarray,
    n: int = 6,
    seed: int = 0,
    transform: Transform | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` augmented copies of one patch (for the report), reproducible from ``seed``.

    ``transform`` defaults to ``CryoEMAugmentation(0.5)`` (no normalisation, so changes
    of brightness stay visible); all copies draw from one generator seeded with ``seed``.
    """
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 1:
        raise InputError(f"augmentation_examples needs n >= 1 examples, got {n!r}")
    transform = CryoEMAugmentation(0.5) if transform is None else transform
    rng = np.random.default_rng(seed)
    image, mask = _prepare(image, mask, rng)
    return [transform(image, mask, rng) for _ in range(int(n))]


def save_augmentation_examples(
    image: np.ndarray,
    mask: np.ndarray,
    path: str | os.PathLike[str],
    n: int = 6,
    seed: int = 0,
    transform: Transform | None = None,
) -> Path:
    """Draw the original patch and ``n`` augmented copies (images above, masks below).

    Written atomically: rendered to a temporary file in the target folder, then renamed
    over ``path``.  The format follows the suffix (``.png`` when there is none).
    Masks are shown with ignore (``-1``) pixels in grey.  Returns the path written.
    """
    # Lazy: only the report needs matplotlib.  Figure() renders with Agg, no pyplot state.
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    examples = [_prepare(image, mask, np.random.default_rng(0))]
    examples += augmentation_examples(image, mask, n=n, seed=seed, transform=transform)

    cols = len(examples)
    fig = Figure(figsize=(1.8 * cols, 3.8), dpi=100, layout="constrained")
    axes = fig.subplots(2, cols, squeeze=False)
    mask_cmap = colormaps["viridis"].with_extremes(bad="0.6")
    for col, (img, msk) in enumerate(examples):
        axes[0, col].imshow(img, cmap="gray")
        axes[1, col].imshow(np.ma.masked_equal(msk, -1.0), cmap=mask_cmap, vmin=0.0, vmax=1.0)
        axes[0, col].set_title("original" if col == 0 else f"augmented {col}", fontsize=8)
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("image", fontsize=8)
    axes[1, 0].set_ylabel("mask (grey: ignore)", fontsize=8)

    target = Path(path)
    fmt = target.suffix.lstrip(".").lower() or "png"
    # A unique name beside the target, opened exclusively; ``open`` honours the umask.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "xb") as handle:
            fig.savefig(handle, format=fmt)
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(err, (OSError, ValueError)):
            raise OutputError(f"{target}: cannot write augmentation examples ({err})") from err
        raise
    return target
