"""Seed ensembles: ``train --ensemble N`` trains N networks and picks with their averaged map.

Member 0 is the run itself (``OUT``, seed ``--seed``); members 1..N-1 are complete runs of
their own under ``OUT/members/seed<S>`` (seeds ``--seed`` + k, same data and settings). Their
best weights are then embedded into ``OUT/best_model.pt`` (key ``ensemble_members``: one
``{"seed", "model_state"}`` per extra member), so that one file still carries the whole
picker: :meth:`cryopick.picking.Picker.from_checkpoints` builds a network per member and
averages their probability maps, and the pick threshold is calibrated again on the
validation micrographs with that averaged map. ``model.pt`` (what ``--resume`` continues)
stays member 0's own; a resumed ensemble run resumes each member in turn.

Why (``train``'s default is 3, ``config.COMMAND_DEFAULTS``): a single small network's validation
and test F1 move by +-0.01-0.02 from one seed to another (the few labelled micrographs of a real
data set), and with one labelled micrograph a seed may start badly; the average of three maps is
level with one network on validation on the full CryoPPP sets and above it elsewhere, and above
its members' mean on the test micrographs of every benchmark set (``benchmarks/results/levers.md``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from . import runlayout as layout
from .checkpoint import load_checkpoint, save_checkpoint
from .errors import CheckpointError, InputError

KEY = "ensemble_members"  # in best_model.pt: the extra members' weights


def member_seeds(seed: int, n: int) -> list[int]:
    """Seeds of the extra members (member 0 keeps ``seed``)."""
    return [seed + k for k in range(1, n)]


def member_dir(out: Path, seed: int) -> Path:
    return Path(out) / layout.MEMBERS / f"seed{seed}"


def held_members(out: Path) -> int:
    """How many networks the run in ``out`` holds (itself and its members' folders)."""
    folder = Path(out) / layout.MEMBERS
    return 1 + len([d for d in folder.glob("seed*") if d.is_dir()]) if folder.is_dir() else 1


def started_size(out: Path) -> int:
    """The ensemble size the run in ``out`` was started with (its ``config.yaml``; at least the
    networks it holds): what ``--resume`` without ``--ensemble`` continues."""
    try:
        started = yaml.safe_load((Path(out) / layout.CONFIG).read_text())["train"]["ensemble"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        started = None
    return max(started if isinstance(started, int) else 1, held_members(out))


def check_resume(out: Path, n: int) -> None:
    """``--resume`` must not ask for fewer networks than the folder holds (its extra members
    would silently drop out of ``best_model.pt``); more is fine (the new members are trained, and
    a run killed before its last member resumes with the same ``--ensemble``)."""
    folder = Path(out) / layout.MEMBERS
    held = held_members(out)
    if held > n:
        raise InputError(f"{out}: holds an ensemble of {held} networks ({folder}); pass --ensemble {held} (or "
                         f"more) to resume it, or --overwrite to train {n} afresh")


def member_states(ckpt: dict[str, Any]) -> list[dict[str, Any]]:
    """All members' weights of a checkpoint: its own first, then the embedded ones."""
    return [ckpt["model_state"], *(m["model_state"] for m in ckpt.get(KEY, []))]


def start_note(ckpt: dict[str, Any]) -> str:
    """What a run started from ``ckpt`` logs about an ensemble in it: it starts from member 0."""
    n = len(member_states(ckpt))
    return f"; the first of its {n} networks (seed ensemble)" if n > 1 else ""


def embed_members(best: Path, members: list[tuple[int, Path]]) -> dict[str, Any]:
    """Write the extra members' best weights (``(seed, best_model.pt)`` pairs) into ``best``."""
    ckpt = load_checkpoint(best)
    arch = ckpt["arch"]
    extra = []
    for seed, path in members:
        m = load_checkpoint(path)
        if m["arch"] != arch:
            raise CheckpointError(f"{path}: this ensemble member is a {m['arch']}, the run a {arch}; retrain the "
                                  "ensemble into a new folder (or with --overwrite)")
        extra.append({"seed": seed, "model_state": m["model_state"]})
    ckpt[KEY] = extra
    save_checkpoint(ckpt, best)
    return ckpt


def train_members(cfg, out: Path, train_one: Callable[..., Any], log: Callable[[str], None] = print) -> list[int]:
    """Train members 1..N-1 of the ensemble ``cfg.train.ensemble`` asks for (member 0, the run in
    ``out``, has trained), each by ``train_one(member_cfg, folder)``; returns their seeds."""
    n = cfg.train.ensemble
    seeds = member_seeds(cfg.train.seed, n)
    for k, seed in enumerate(seeds, start=2):
        log(f"ensemble member {k}/{n} (seed {seed}) -> {member_dir(out, seed)}")
        member = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed, ensemble=1))
        train_one(member, member_dir(out, seed))
    return seeds


def finish_ensemble(cfg, out: Path, seeds: list[int], calibrate: Callable[[list[Path]], Any],
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Embed the members into ``out/best_model.pt``, recalibrate its threshold with
    ``calibrate([best])`` on the averaged map; what the run summary records about the ensemble."""
    best = Path(out) / layout.BEST_MODEL
    embed_members(best, [(s, member_dir(out, s) / layout.BEST_MODEL) for s in seeds])
    all_seeds = [cfg.train.seed, *seeds]
    log(f"ensemble of {len(all_seeds)} networks (seeds {', '.join(map(str, all_seeds))}) in {best}; their "
        "averaged map:")
    calibration = calibrate([best])
    if calibration is None:
        log("no labelled validation micrographs to calibrate it on: picking falls back to threshold 0.5")
    return {"members": len(all_seeds), "seeds": all_seeds, "folders": [str(member_dir(out, s)) for s in seeds],
            "pick_threshold": calibration.threshold if calibration else None,
            "validation": calibration.scores if calibration else None}
