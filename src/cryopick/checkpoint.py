"""Checkpoints: one dict that holds everything needed to resume training or to pick.

Keys: format, format_version, cryopick_version, arch (name + constructor arguments),
model_state, preprocessing (downsample, normalize, radius, mask_radius_scale),
pick_threshold (calibrated score threshold or None), config (the run's resolved
config), epoch, history, best_f1/best_epoch, and for resuming optimizer/scheduler state.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .data import Preprocessing
from .errors import CheckpointError
from .io.atomic import atomic_torch_save
from .models import ARCHITECTURES, UNetFamily, build_model

FORMAT = "cryopick-checkpoint"
FORMAT_VERSION = 1


def make_checkpoint(model: UNetFamily, prep: Preprocessing, **extra: Any) -> dict[str, Any]:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "cryopick_version": __version__,
            "arch": model.architecture(), "model_state": state, "preprocessing": dataclasses.asdict(prep),
            "pick_threshold": None, **extra}


def save_checkpoint(ckpt: dict[str, Any], path: str | Path) -> Path:
    atomic_torch_save(ckpt, path)
    return Path(path)


def load_checkpoint(path: str | Path, expect_arch: str | None = None) -> dict[str, Any]:
    """Read and validate a checkpoint (``general``: the packaged general model); one clear
    CheckpointError line when it is unusable."""
    if str(path) == "general":
        from .pretrained import general_path

        path = general_path()
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated, not a torch file, ...
        raise CheckpointError(f"{path}: not a readable cryopick checkpoint ({type(e).__name__}); "
                              "was the file truncated or is it from another program?") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cryopick checkpoint (no '{FORMAT}' marker); "
                              "cryopick reads only checkpoints it wrote itself")
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {ckpt.get('format_version')} is not supported by "
                              f"cryopick {__version__} (expects {FORMAT_VERSION}); retrain or use the cryopick version "
                              f"that wrote it ({ckpt.get('cryopick_version')})")
    for key in ("arch", "model_state", "preprocessing"):
        if not isinstance(ckpt.get(key), dict):
            raise CheckpointError(f"{path}: checkpoint has no usable '{key}' entry; the file is damaged, "
                                  "use another checkpoint or retrain")
    arch = ckpt["arch"].get("arch")
    if arch not in ARCHITECTURES:
        raise CheckpointError(f"{path}: unknown architecture {arch!r} in checkpoint")
    if expect_arch is not None and arch != expect_arch:
        raise CheckpointError(f"{path}: checkpoint is a {arch} but {expect_arch} was asked for; "
                              f"use --arch {arch} or another checkpoint")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], path: str | Path = "checkpoint") -> UNetFamily:
    a = ckpt["arch"]
    model = build_model(a["arch"], a["base_features"], a.get("in_channels", 1), a.get("out_channels", 1))
    try:
        model.load_state_dict(ckpt["model_state"])
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit a {a['arch']} of base width {a['base_features']} "
                              f"({str(e).splitlines()[0]})") from None
    return model


def prep_from_checkpoint(ckpt: dict[str, Any]) -> Preprocessing:
    return Preprocessing(**ckpt["preprocessing"])
