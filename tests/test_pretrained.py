"""The general model: export (float16, nominal preprocessing), picking with --radius, training from it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryopick.checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
from cryopick.cli import main
from cryopick.config import PickConfig
from cryopick.data import Preprocessing
from cryopick.errors import InputError
from cryopick.models import build_model
from cryopick.picking import Picker
from cryopick.pretrained import GENERAL_PREP, export_general, initial_model
from cryopick.simulate import SimulationConfig, save_simulation, simulate


@pytest.fixture(scope="module")
def general(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("unet", 4)
    ckpt = make_checkpoint(model, Preprocessing(2.0, "robust", 9.0, 0.6), epoch=3, optimizer={"state": {}})
    path = export_general(ckpt, tmp_path_factory.mktemp("general") / "general.pt", {"sets": ["simulated"]})
    return path, model


def test_export_keeps_the_weights_in_half_precision_and_drops_training_state(general):
    path, model = general
    ckpt = load_checkpoint(path)
    assert "optimizer" not in ckpt and ckpt["general"] == {"sets": ["simulated"]}
    assert ckpt["preprocessing"]["radius"] == GENERAL_PREP.radius and ckpt["preprocessing"]["downsample"] == 1.0
    assert all(v.dtype == torch.float16 for v in ckpt["model_state"].values() if v.is_floating_point())
    loaded = model_from_checkpoint(ckpt, path)
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        if a.is_floating_point():
            assert b.dtype == torch.float32
            torch.testing.assert_close(a, b, atol=2e-3, rtol=2e-3, msg=k)


def test_picking_with_a_general_model_needs_the_radius_and_downsamples_automatically(general):
    path, _ = general
    with pytest.raises(InputError, match="--radius"):
        Picker.from_checkpoints([path], PickConfig())
    picker = Picker.from_checkpoints([path], PickConfig(radius=30.0))
    assert picker.prep.radius == 30.0 and picker.prep.downsample == 2.0  # 60 px across -> ~28 px
    with pytest.raises(InputError, match="positive"):
        Picker.from_checkpoints([path], PickConfig(radius=float("nan")))


def test_initial_model_checks_the_width(general):
    path, model = general
    assert initial_model(None, "unet", None) is None
    start = initial_model(str(path), "unet", None, log=lambda m: None)
    assert start.architecture()["base_features"] == 4
    with pytest.raises(InputError, match="--base-features 4") as err:
        initial_model(str(path), "unet", 8)
    assert "leave out --pretrained" in str(err.value)  # a flag that exists


def test_train_from_a_pretrained_checkpoint_through_the_cli(general, tmp_path, capsys):
    path, _ = general
    sim = tmp_path / "sim"
    save_simulation(simulate(SimulationConfig(n=2, size=64, diameter=12, snr=0.5, seed=1)), sim)
    out = tmp_path / "run"
    rc = main(["train", "--images", str(sim / "micrographs"), "--labels", str(sim / "labels.star"), "--radius", "6",
               "--out", str(out), "--pretrained", str(path), "--patch-size", "32", "--patches-per-epoch", "4",
               "--batch-size", "4", "--epochs", "1", "--device", "cpu", "--ensemble", "1"])
    assert rc == 0
    assert "starting from" in capsys.readouterr().out
    ckpt = load_checkpoint(out / "model.pt")
    assert ckpt["arch"]["base_features"] == 4  # the width came from the pretrained model
    assert ckpt["preprocessing"]["radius"] == 6.0  # the run's own particle size, not the nominal one


def test_the_shipped_general_model_picks_an_unseen_simulated_micrograph(tmp_path, capsys):
    from cryopick.metrics.particle import evaluate_picks
    from cryopick.io.labels import read_labels
    from cryopick.pretrained import general_path

    info = load_checkpoint(general_path())["general"]
    assert "cryoppp-10059" in info["sets"] and info["sim_variants"] == 6
    sim = tmp_path / "sim"
    save_simulation(simulate(SimulationConfig(n=1, size=384, diameter=28, snr=0.3, labelled_fraction=1.0,
                                              seed=99)), sim)
    out = tmp_path / "picks"
    rc = main(["pick", "--model", "general", "--radius", "14", "--out", str(out), str(sim / "micrographs"),
               "--device", "cpu"])
    assert rc == 0
    assert "the general model has not seen your data" in capsys.readouterr().out
    picks = {k: v.xy for k, v in read_labels(out / "picks.star").items()}
    truth = {k: v.xy for k, v in read_labels(sim / "labels.star").items()}
    assert evaluate_picks(picks, truth, 14.0)[0].f1 > 0.6  # random weights pick nothing like this


def _selftrain_args(sim, out, *extra):
    return ["selftrain", "--images", str(sim / "micrographs"), "--labels", str(sim / "labels.star"), "--radius", "6",
            "--out", str(out), "--patch-size", "32", "--patches-per-epoch", "4", "--batch-size", "4", "--epochs", "1",
            "--iterations", "1", "--retrain-epochs", "1", "--device", "cpu", *extra]


def test_selftrain_starts_its_supervised_phase_from_a_pretrained_checkpoint(general, tmp_path, capsys):
    path, _ = general
    sim = tmp_path / "sim"
    save_simulation(simulate(SimulationConfig(n=2, size=64, diameter=12, snr=0.5, seed=1)), sim)
    out = tmp_path / "run"
    assert main(_selftrain_args(sim, out, "--pretrained", str(path))) == 0
    assert "starting from" in capsys.readouterr().out
    assert load_checkpoint(out / "baseline_model.pt")["arch"]["base_features"] == 4  # not the default width


def test_selftrain_refuses_init_and_pretrained_together(general, tmp_path, capsys):
    path, _ = general
    sim = tmp_path / "sim"
    save_simulation(simulate(SimulationConfig(n=2, size=64, diameter=12, snr=0.5, seed=1)), sim)
    assert main(_selftrain_args(sim, tmp_path / "run", "--pretrained", str(path), "--init", str(path))) != 0
    err = capsys.readouterr().err
    assert "--init" in err and "--pretrained" in err and "Traceback" not in err
    assert not list((tmp_path / "run").rglob("*.pt"))  # refused before training
