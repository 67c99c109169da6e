"""train --ensemble N: members trained with their own seeds, embedded into best_model.pt, picked as one averaged map."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from cryopick.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from cryopick.cli import main
from cryopick.config import RunConfig, TrainConfig, with_command_defaults
from cryopick.data import Preprocessing
from cryopick.errors import CheckpointError
from cryopick.ensemble import KEY, embed_members, member_states, start_note
from cryopick.models import build_model
from cryopick.picking import Picker
from cryopick.simulate import SimulationConfig, save_simulation, simulate


def _net(seed: int):
    torch.manual_seed(seed)
    return build_model("unet", 4)


def test_an_embedded_ensemble_picks_with_the_mean_of_its_members_maps(tmp_path):
    prep = Preprocessing(1.0, "robust", 6.0, 0.6)
    paths = []
    for seed in (0, 1, 2):
        paths.append(save_checkpoint(make_checkpoint(_net(seed), prep), tmp_path / f"m{seed}.pt"))
    image = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    singles = [Picker.from_checkpoints([p]).probability(image) for p in paths]
    ckpt = embed_members(paths[0], [(1, paths[1]), (2, paths[2])])
    assert [m["seed"] for m in ckpt[KEY]] == [1, 2] and len(member_states(load_checkpoint(paths[0]))) == 3
    ensemble = Picker.from_checkpoints([paths[0]])
    assert len(ensemble.models) == 3
    np.testing.assert_allclose(ensemble.probability(image), np.mean(singles, axis=0), atol=1e-6)
    assert not np.allclose(singles[0], singles[1])  # the members differ, so the mean is not member 0's map


def test_embedding_refuses_a_member_of_another_width(tmp_path):
    prep = Preprocessing(1.0, "robust", 6.0, 0.6)
    a = save_checkpoint(make_checkpoint(build_model("unet", 4), prep), tmp_path / "a.pt")
    b = save_checkpoint(make_checkpoint(build_model("unet", 8), prep), tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match="ensemble member"):
        embed_members(a, [(1, b)])


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    save_simulation(simulate(SimulationConfig(n=3, size=64, diameter=12, snr=0.5, seed=1)), root)
    return root


def _train(sim, out, *extra):
    return main(["train", "--images", str(sim / "micrographs"), "--labels", str(sim / "labels.star"), "--radius", "6",
                 "--out", str(out), "--patch-size", "32", "--patches-per-epoch", "4", "--batch-size", "4",
                 "--epochs", "1", "--base-features", "4", "--val-fraction", "0.34", "--device", "cpu", *extra])


def test_train_ensemble_through_the_cli(sim, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(sim, out, "--ensemble", "2", "--seed", "5") == 0
    text = capsys.readouterr().out
    assert "ensemble member 2/2 (seed 6)" in text and "an ensemble of 2 networks" in text
    member = out / "members" / "seed6"
    assert (member / "best_model.pt").exists() and (member / "train_summary.json").exists()
    best = load_checkpoint(out / "best_model.pt")
    assert [m["seed"] for m in best[KEY]] == [6]
    member_state = load_checkpoint(member / "best_model.pt")["model_state"]
    assert all(torch.equal(best[KEY][0]["model_state"][k], v) for k, v in member_state.items())
    assert KEY not in load_checkpoint(out / "model.pt")  # what --resume continues stays one network
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["ensemble"]["seeds"] == [5, 6] and summary["ensemble"]["members"] == 2
    assert summary["pick_threshold"] == best["pick_threshold"] == summary["ensemble"]["pick_threshold"]
    # pick with it: both networks are used
    assert len(Picker.from_checkpoints([out / "best_model.pt"]).models) == 2
    assert main(["pick", "--model", str(out / "best_model.pt"), "--out", str(tmp_path / "picks"),
                 str(sim / "micrographs"), "--device", "cpu"]) == 0


def test_a_run_started_from_an_ensemble_says_it_takes_the_first_network():
    assert start_note({"model_state": {}, KEY: [{"seed": 43, "model_state": {}}, {"seed": 44, "model_state": {}}]}) \
        == "; the first of its 3 networks (seed ensemble)"
    assert start_note({"model_state": {}}) == ""


def test_command_defaults_fill_only_what_is_unset():
    got = {c: with_command_defaults(RunConfig(), c).train for c in ("train", "selftrain", "compare")}
    assert (got["train"].ensemble, got["train"].ema_epochs) == (3, 2.0)
    assert all((got[c].ensemble, got[c].ema_epochs) == (1, 0.0) for c in ("selftrain", "compare"))
    given = with_command_defaults(RunConfig(train=TrainConfig(ensemble=2, ema_epochs=0.0)), "train").train
    assert (given.ensemble, given.ema_epochs) == (2, 0.0)


def test_train_defaults_to_an_ensemble_of_three_weight_averaged_networks(sim, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(sim, out) == 0  # no --ensemble, no --ema-epochs
    assert "an ensemble of 3 networks" in capsys.readouterr().out.splitlines()[-1]
    written = yaml.safe_load((out / "config.yaml").read_text())["train"]
    assert (written["ensemble"], written["ema_epochs"]) == (3, 2.0)
    assert [m["seed"] for m in load_checkpoint(out / "best_model.pt")[KEY]] == [43, 44]
    assert "ema" in load_checkpoint(out / "members" / "seed44" / "model.pt")  # members average their weights too


def test_resume_continues_every_member(sim, tmp_path):
    out = tmp_path / "run"
    assert _train(sim, out, "--ensemble", "2") == 0
    assert _train(sim, out, "--ensemble", "2", "--resume", "--epochs", "2") == 0
    for folder in (out, out / "members" / "seed43"):
        assert [h["epoch"] for h in json.loads((folder / "metrics.json").read_text())][-1] == 2
    assert len(load_checkpoint(out / "best_model.pt")[KEY]) == 1  # re-embedded, not appended


def test_resume_must_name_the_ensemble_size_the_folder_holds(sim, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(sim, out, "--ensemble", "2") == 0
    capsys.readouterr()
    assert _train(sim, out, "--resume", "--ensemble", "1", "--epochs", "2") != 0  # would drop the member
    assert "pass --ensemble 2 (or more) to resume it" in capsys.readouterr().err
    assert _train(sim, out, "--resume", "--epochs", "2") == 0  # no --ensemble: the folder's 2, not the default 3
    assert not (out / "members" / "seed44").exists()
    assert [m["seed"] for m in load_checkpoint(out / "best_model.pt")[KEY]] == [43]
    assert _train(sim, out, "--resume", "--ensemble", "3") == 0  # a larger ensemble adds a member
    assert [m["seed"] for m in load_checkpoint(out / "best_model.pt")[KEY]] == [43, 44]


def test_overwrite_clears_an_earlier_ensembles_members(sim, tmp_path):
    out = tmp_path / "run"
    assert _train(sim, out, "--ensemble", "2") == 0
    assert (out / "members").is_dir()
    assert _train(sim, out, "--overwrite", "--ensemble", "1") == 0
    assert not (out / "members").exists() and KEY not in load_checkpoint(out / "best_model.pt")


def test_ensemble_must_be_a_count_and_selftrain_refuses_it(sim, tmp_path, capsys):
    assert _train(sim, tmp_path / "bad", "--ensemble", "0") != 0
    assert "--ensemble" in capsys.readouterr().err
    from cryopick.commands._checks import check_run_config
    from cryopick.config import RunConfig
    from cryopick.errors import InputError

    cfg = RunConfig()
    cfg.train.ensemble = 2
    check_run_config(cfg)  # train takes it
    with pytest.raises(InputError, match="cryopick train --ensemble N"):
        check_run_config(cfg, selftrain=True)
