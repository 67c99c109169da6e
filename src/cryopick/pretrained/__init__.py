"""The general model shipped inside the package (``--model general``, ``--pretrained general``).

``general.pt`` is a U-Net trained on real CryoPPP / EMPIAR micrographs and simulated
ones, each downsampled by cryopick's automatic rule (particles 16-32 px across when it was built);
``benchmarks/build_general_model.py`` rebuilds it. Its weights are stored in float16
(half the size); they load into float32 models. It carries no particle size of its own
(:data:`GENERAL_PREP` is nominal): picking with it needs ``--radius``, and training from
it (``--pretrained general``) uses the radius of the run.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import torch

from ..data import Preprocessing
from ..errors import InputError

GENERAL = "general"
GENERAL_PREP = Preprocessing(downsample=1.0, normalize="robust", radius=14.0, mask_radius_scale=0.6)


def general_path() -> Path:
    """The packaged checkpoint; an InputError when this installation has none."""
    path = Path(str(resources.files(__package__) / "general.pt"))
    if not path.is_file():
        raise InputError(f"{path}: this cryopick installation ships no general model; rebuild it with "
                         "benchmarks/build_general_model.py --ship, or pass a checkpoint file to --model / --init")
    return path


def resolve_checkpoint_path(path: str | Path) -> Path:
    """``general`` -> the packaged file; anything else unchanged."""
    return general_path() if str(path) == GENERAL else Path(path)


def is_general(ckpt: dict[str, Any]) -> bool:
    return bool(ckpt.get("general"))


def export_general(ckpt: dict[str, Any], path: str | Path, info: dict[str, Any]) -> Path:
    """A shippable copy of a training checkpoint: weights in float16, no optimizer state,
    the nominal preprocessing, and ``info`` (how it was trained) under ``general``."""
    import dataclasses

    from ..checkpoint import save_checkpoint

    keep = {k: v for k, v in ckpt.items() if k not in ("optimizer", "scheduler", "grad_scaler", "history", "config")}
    keep["model_state"] = {k: (v.half() if v.is_floating_point() else v) for k, v in ckpt["model_state"].items()}
    keep["preprocessing"] = dataclasses.asdict(GENERAL_PREP)
    keep["pick_threshold"] = None
    keep["general"] = info
    return save_checkpoint(keep, path)


def initial_model(init: str | None, arch: str, base_features: int | None, log=print):
    """The model a training run starts from: None (from scratch) or the weights of ``init``
    (a checkpoint file or ``general``), which must match the run's architecture and width."""
    if not init:
        return None
    from ..checkpoint import load_checkpoint, model_from_checkpoint
    from ..ensemble import start_note

    path = resolve_checkpoint_path(init)
    ckpt = load_checkpoint(path, expect_arch=arch)
    width = ckpt["arch"].get("base_features")
    if base_features is not None and base_features != width:
        raise InputError(f"--pretrained {init}: its base width is {width}, the run asks for --base-features "
                         f"{base_features}; pass --base-features {width}, or leave out --pretrained to start from scratch")
    model = model_from_checkpoint(ckpt, path)
    model.to(torch.float32)
    log(f"starting from {'the general model' if init == GENERAL else init} ({path.name}, base width {width}"
        f"{start_note(ckpt)})")
    return model
