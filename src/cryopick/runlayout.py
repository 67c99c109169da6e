"""The files of a run folder: their names, writers and readers, in one place.

``cryopick train`` writes into OUT:

- ``model.pt``            the last epoch (what ``--resume`` continues from)
- ``best_model.pt``       the epoch with the best validation particle AP
- ``metrics.json``        the training history: a JSON list, one record per epoch
- ``config.yaml``         the resolved configuration
- ``train_summary.json``  the run summary

``cryopick selftrain`` writes ``supervised/`` and ``iteration_K/`` (each the model files
and ``metrics.json`` of one training), ``baseline_model.pt``, ``model_iteration_K.pt``,
``final_model.pt``, ``config.yaml`` and ``training_summary.json``.

``cryopick evaluate`` writes ``metrics.json`` too, as a JSON object (``radius``,
``overall``, ``micrographs``) beside ``pr_curve.csv``. The name stays for the run folders
of earlier versions and the tools that read them; :func:`metrics_kind` tells the two
apart by shape, and :func:`read_history` / :func:`read_evaluation` read each.

Both summaries share one format (:data:`SUMMARY_VERSION` 2): ``kind`` (``train`` or
``selftrain``), ``model`` (the file to pick with), ``pick_threshold`` (calibrated on the
validation micrographs, None without them) and ``validation_particles`` (that model's
validation particle ``f1`` / ``ap``), then what each kind adds: for ``train``
``best_f1``, ``best_epoch``, ``parameters``, ``seconds_per_epoch`` and ``final`` (the
last epoch's record); for ``selftrain`` ``config``, ``iterations``, ``baseline``,
``candidates``, ``shipped``, ``final`` (the shipped model's validation pixel metrics) and
the rest listed in :mod:`cryopick.selftrain`. :func:`read_summary` reads either file,
also as written before the shared fields existed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io.atomic import atomic_write_json

MODEL = "model.pt"
BEST_MODEL = "best_model.pt"
METRICS = "metrics.json"
CONFIG = "config.yaml"
TRAIN_SUMMARY = "train_summary.json"
SELFTRAIN_SUMMARY = "training_summary.json"
BASELINE_MODEL = "baseline_model.pt"
FINAL_MODEL = "final_model.pt"
SUPERVISED = "supervised"
MEMBERS = "members"  # train --ensemble: the extra members' run folders (cryopick.ensemble)
PR_CURVE = "pr_curve.csv"
PICK_SUMMARY = "pick_summary.json"  # cryopick pick (written by cryopick.picking)
COMPARISON = "comparison.json"  # cryopick compare
DEMO_SUMMARY = "demo_summary.json"  # cryopick demo

TRAIN_FILES = [MODEL, BEST_MODEL, METRICS, CONFIG, TRAIN_SUMMARY]  # what a training run writes
SUMMARY_VERSION = 2
SUMMARIES = {"train": TRAIN_SUMMARY, "selftrain": SELFTRAIN_SUMMARY}
MODEL_OF = {"train": BEST_MODEL, "selftrain": FINAL_MODEL}  # the model a run hands on


def iteration_model(k: int) -> str:
    return f"model_iteration_{k}.pt"


def iteration_dir(k: int) -> str:
    return f"iteration_{k}"


def read_json(path: Path) -> Any:
    """A JSON file's content; ValueError naming the file when it is unreadable or not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{Path(path).name}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{Path(path).name}: cannot read ({exc})") from None


# --------------------------------------------------------------------------- metrics.json


def write_history(out: Path, history: list[dict], prefix: str = "") -> None:
    """The training history, one record per epoch, as ``{prefix}metrics.json``."""
    atomic_write_json(Path(out) / f"{prefix}{METRICS}", history)


def metrics_kind(data: Any) -> str | None:
    """What a ``metrics.json``'s content is: 'training' (a list of epoch records, or an object
    with a ``history`` list), 'evaluation' (an object with ``overall``), else None."""
    if isinstance(data, list):
        return "training"
    if isinstance(data, Mapping) and "overall" in data:
        return "evaluation"
    if isinstance(data, Mapping) and "history" in data:
        return "training"
    return None


def read_history(path: Path) -> list[dict]:
    """The epoch records of a training ``metrics.json`` (ValueError when unreadable; [] when it is not one)."""
    data = read_json(path)
    if metrics_kind(data) != "training":
        return []
    records = data if isinstance(data, list) else data.get("history") or []
    return [r for r in records if isinstance(r, Mapping)]


def read_evaluation(folder: Path) -> dict | None:
    """The content of an evaluation folder's ``metrics.json``, None when absent, unreadable or not one."""
    try:
        data = read_json(Path(folder) / METRICS)
    except ValueError:
        return None
    return data if metrics_kind(data) == "evaluation" else None


# --------------------------------------------------------------------------- summaries


def summary_header(kind: str, pick_threshold: float | None, particles: Mapping | None) -> dict:
    """The fields both summaries start with (see the module docstring)."""
    return {"kind": kind, "summary_version": SUMMARY_VERSION, "model": MODEL_OF[kind],
            "pick_threshold": pick_threshold, "validation_particles": dict(particles) if particles else None}


def write_summary(out: Path, summary: Mapping) -> Path:
    """Write a summary (it starts with :func:`summary_header`) under its kind's file name."""
    path = Path(out) / SUMMARIES[summary["kind"]]
    atomic_write_json(path, dict(summary))
    return path


@dataclass
class RunSummary:
    """A run's summary as read back: the shared fields, and the whole file in ``data``."""

    kind: str  # train | selftrain
    path: Path  # the summary file
    model: Path  # the model to pick with
    pick_threshold: float | None
    particles: dict | None  # that model's validation particle f1 / ap, None when unknown
    data: dict = field(default_factory=dict)


def summary_path(folder: Path, kind: str) -> Path:
    return Path(folder) / SUMMARIES[kind]


def read_summary(folder: Path, kind: str) -> RunSummary | None:
    """The ``kind`` summary of ``folder``; None when absent. ValueError when it is not valid
    JSON or not an object. Summaries of earlier versions (no shared fields) read the same."""
    path = summary_path(folder, kind)
    if not path.is_file():
        return None
    data = read_json(path)
    if not isinstance(data, Mapping):
        raise ValueError(f"{path.name}: not a JSON object")
    particles = data.get("validation_particles", data.get("final_particles") if kind == "selftrain" else None)
    return RunSummary(kind, path, Path(folder) / str(data.get("model") or MODEL_OF[kind]), data.get("pick_threshold"),
                      dict(particles) if isinstance(particles, Mapping) else None, dict(data))
