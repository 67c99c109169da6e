"""``TrainConfig.patience``: training stops once validation has not improved for that many epochs.

Validation is replaced by a scripted sequence of particle APs, so which epoch is best, and so
where the run must stop, is known in advance; the network itself trains for real (tiny, CPU).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import cryopick.train as tr
from cryopick.checkpoint import load_checkpoint
from cryopick.config import ModelConfig, RunConfig, TrainConfig, with_command_defaults
from cryopick.data import Preprocessing, Sample
from cryopick.metrics.particle import ParticleMetrics
from cryopick.metrics.pixel import PixelMetrics
from cryopick.simulate import SimulationConfig, simulate
from cryopick.targets import particle_mask

RADIUS = 6.0
PREP = Preprocessing(downsample=1.0, normalize="none", radius=RADIUS)
# epoch:      1    2    3    4    5    6    7    8    9   10
SCRIPT = [0.50, 0.70, 0.60, 0.65, 0.69, 0.70, 0.40, 0.80, 0.90, 0.95]  # best 2 until epoch 8


def _samples(n: int, seed: int) -> list[Sample]:
    out = []
    for i in range(n):
        sim = simulate(SimulationConfig(n=1, size=64, diameter=12, snr=0.5, seed=seed + i))[0]
        mask = particle_mask(sim.image.shape, sim.coords, RADIUS)
        out.append(Sample(f"m{seed}_{i}", sim.image.astype(np.float32), mask, sim.coords, sim.image.shape))
    return out


@pytest.fixture
def scripted(monkeypatch):
    """``validate`` answers SCRIPT[k] as the particle AP of its k-th call; returns the call count."""
    calls = []

    def fake_validate(model, samples, device, prep, *args, **kwargs):
        calls.append(1)
        ap = SCRIPT[len(calls) - 1]
        pixels = PixelMetrics(precision=0.5, recall=0.5, f1=0.5, iou=0.3, auc=0.5, threshold=0.5, n_pixels=1)
        return pixels, ParticleMetrics(precision=ap, recall=ap, f1=ap, ap=ap, n_picks=1, n_truth=1, n_matched=1,
                                       mean_error=0.0, threshold=0.5, best_f1=ap)

    monkeypatch.setattr(tr, "validate", fake_validate)
    return calls


def _fit(tmp_path, patience: int, resume: bool = False, log=None):
    cfg = TrainConfig(epochs=len(SCRIPT), batch_size=2, patch_size=32, patches_per_epoch=2, min_patches_per_epoch=2,
                      loss="focal", device="cpu", seed=3, tile_size=64, patience=patience, resume=resume)
    return tr.fit(_samples(1, 1), _samples(1, 9), PREP, ModelConfig(base_features=4), cfg, tmp_path / "run",
                  log=log or (lambda m: None))


def test_stops_patience_epochs_after_the_best_and_keeps_the_best(tmp_path, scripted):
    lines = []
    result = _fit(tmp_path, patience=3, log=lines.append)
    # best epoch 2 (0.70; epoch 6 only equals it), so epochs 3-5 do not improve and the run stops after epoch 5
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4, 5]
    assert result.best_epoch == 2
    assert load_checkpoint(tmp_path / "run" / "best_model.pt")["epoch"] == 2
    assert any("stopping after epoch 5" in m and "best epoch 2" in m for m in lines)


def test_a_later_improvement_resets_the_count(tmp_path, scripted):
    result = _fit(tmp_path, patience=6)  # epoch 8 (0.80) beats epoch 2 before six epochs have passed
    assert result.best_epoch == 10 and len(result.history) == 10


def test_patience_zero_trains_every_epoch(tmp_path, scripted):
    result = _fit(tmp_path, patience=0)
    assert len(result.history) == len(SCRIPT) and result.best_epoch == 10


def test_a_stopped_run_resumed_does_not_train_on(tmp_path, scripted):
    _fit(tmp_path, patience=3)
    assert len(scripted) == 5
    lines = []
    result = _fit(tmp_path, patience=3, resume=True, log=lines.append)
    assert len(scripted) == 5, "the resumed run validated (so trained) another epoch"
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4, 5]
    assert any("stopping after epoch 5" in m for m in lines)


def test_command_defaults():
    assert with_command_defaults(RunConfig(), "train").train.patience == 8
    assert with_command_defaults(RunConfig(), "compare").train.patience == 0
    assert with_command_defaults(RunConfig(), "selftrain").train.patience == 8


def test_selftrain_iterations_stop_early_only_when_they_hand_on_their_best_epoch():
    from cryopick.config import SelfTrainConfig
    from cryopick.selftrain import iteration_train_config

    cfg = with_command_defaults(RunConfig(), "selftrain")
    assert iteration_train_config(cfg, 1, "pu", 0.1).patience == 8
    last = dataclasses.replace(cfg, selftrain=SelfTrainConfig(iteration_model="last"))
    assert iteration_train_config(last, 1, "pu", 0.1).patience == 0
