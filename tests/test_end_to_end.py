"""The pipeline through the `cryopick` entry point, on tiny simulated micrographs."""

import json

import numpy as np
import pytest
import yaml

from cryopick.checkpoint import load_checkpoint
from cryopick.cli import main
from cryopick.io import read_labels
from cryopick.simulate import SimulationConfig
from cryopick.splits import simulated_splits

TINY = ["--base-features", "4", "--patch-size", "64", "--patches-per-epoch", "8", "--batch-size", "4",
        "--device", "cpu"]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    return simulated_splits(root, SimulationConfig(size=96, diameter=16, snr=0.5, labelled_fraction=0.5, seed=1), 2, 1, 1)


def _train(sim, out, *extra):
    return main(["train", "--images", str(sim.train_mics), "--labels", str(sim.train_labels), "--val-images",
                 str(sim.val_mics), "--val-labels", str(sim.val_labels), "--radius", "8", "--out", str(out),
                 "--epochs", "2", *TINY, "--ensemble", "1", *extra])  # the default ensemble: tests/test_ensemble.py


@pytest.fixture(scope="module")
def trained(sim, tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    assert _train(sim, out) == 0
    return out


def test_train_writes_run_directory(trained):
    for f in ["best_model.pt", "model.pt", "metrics.json", "config.yaml", "train_summary.json"]:
        assert (trained / f).is_file(), f
    history = json.loads((trained / "metrics.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2]
    for key in ["precision", "recall", "f1", "iou", "auc", "train_loss"]:
        assert key in history[-1]
    ckpt = load_checkpoint(trained / "model.pt")
    for key in ["model_state", "optimizer", "scheduler", "epoch", "config", "arch", "preprocessing"]:
        assert key in ckpt
    assert ckpt["epoch"] == 2 and ckpt["arch"]["arch"] == "unet"
    assert "command" in (trained / "config.yaml").read_text()


@pytest.mark.slow
def test_seeded_training_reproduces_its_metrics(sim, trained, tmp_path):
    assert _train(sim, tmp_path / "again") == 0
    a = json.loads((trained / "metrics.json").read_text())
    b = json.loads((tmp_path / "again" / "metrics.json").read_text())
    for ra, rb in zip(a, b):
        for k in ["train_loss", "f1", "auc", "precision"]:
            assert ra[k] == pytest.approx(rb[k], abs=1e-6), k


def test_pick_and_evaluate(sim, trained, tmp_path, capsys):
    out = tmp_path / "picks"
    rc = main(["pick", "--model", str(trained / "best_model.pt"), "--out", str(out), str(sim.test_mics),
               "--format", "star", "--format", "box", "--format", "topaz", "--format", "json", "--format", "csv",
               "--format", "cryosparc", "--threshold", "0.0", "--device", "cpu"])
    assert rc == 0
    picks = read_labels(out / "picks.star")
    assert picks and all(p.scores is not None for p in picks.values())
    assert (out / "box").is_dir() and (out / "picks.json").is_file() and (out / "pick_summary.json").is_file()
    rc = main(["evaluate", "--picks", str(out / "picks.star"), "--truth", str(sim.test_labels), "--radius", "8",
               "--out", str(tmp_path / "eval")])
    assert rc == 0
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert 0 <= m["overall"]["precision"] <= 1 and m["overall"]["n_truth"] > 0
    assert "AP" in capsys.readouterr().out


def test_predict_writes_maps(sim, trained, tmp_path):
    rc = main(["predict", "--model", str(trained / "best_model.pt"), "--out", str(tmp_path), str(sim.test_mics),
               "--threshold", "0.5", "--format", "png"])
    assert rc == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim_0003_mask.png", "sim_0003_prob.png"]


@pytest.mark.slow
def test_selftrain_end_to_end(sim, trained, tmp_path):
    out = tmp_path / "st"
    rc = main(["selftrain", "--images", str(sim.train_mics), "--labels", str(sim.train_labels), "--val-images",
               str(sim.val_mics), "--val-labels", str(sim.val_labels), "--radius", "8", "--out", str(out),
               "--init", str(trained / "best_model.pt"), "--iterations", "2", "--retrain-epochs", "1",
               "--dynamic-thresholds", *TINY])
    assert rc == 0
    for f in ["baseline_model.pt", "model_iteration_1.pt", "model_iteration_2.pt", "final_model.pt",
              "training_summary.json"]:
        assert (out / f).is_file(), f
    s = json.loads((out / "training_summary.json").read_text())
    assert [it["iteration"] for it in s["iterations"]] == [1, 2]
    assert s["final_iteration"] in (0, 1, 2)  # chosen by validation particle F1
    chosen = out / ("baseline_model.pt" if s["final_iteration"] == 0 else f"model_iteration_{s['final_iteration']}.pt")
    final = load_checkpoint(out / "final_model.pt")
    assert final["pick_threshold"] == pytest.approx(s["pick_threshold"])
    import torch

    for k, v in load_checkpoint(chosen)["model_state"].items():
        assert torch.equal(v, final["model_state"][k]), k
    assert s["iterations"][0]["positive_threshold"] == pytest.approx(0.98)
    assert s["iterations"][1]["positive_threshold"] == pytest.approx(0.90)
    for key in ["pseudo_positive", "reliable_negative", "ignored", "label_agreement", "validation", "warnings"]:
        assert key in s["iterations"][0]
    written = yaml.safe_load((out / "config.yaml").read_text())["train"]  # selftrain's own defaults
    assert (written["ensemble"], written["ema_epochs"]) == (1, 0.0)


@pytest.mark.slow
def test_selftrain_with_attention_unet_and_balanced_sampling(sim, tmp_path):
    rc = main(["selftrain", "--images", str(sim.train_mics), "--labels", str(sim.train_labels), "--radius", "8",
               "--out", str(tmp_path), "--arch", "attention-unet", "--epochs", "1", "--iterations", "1",
               "--retrain-epochs", "1", "--balanced-sampling", "--loss", "bce", *TINY])
    assert rc == 0
    assert load_checkpoint(tmp_path / "final_model.pt")["arch"]["arch"] == "attention-unet"


def test_prepare_writes_zarr_and_train_reads_it(sim, tmp_path):
    rc = main(["prepare", "--images", str(sim.train_mics), "--labels", str(sim.train_labels), "--radius", "8",
               "--out", str(tmp_path / "z")])
    assert rc == 0
    assert (tmp_path / "z" / "images.zarr").exists() and (tmp_path / "z" / "masks.zarr").exists()
    rc = main(["train", "--images", str(tmp_path / "z"), "--out", str(tmp_path / "t"), "--epochs", "1",
               "--val-fraction", "0.5", *TINY])
    assert rc == 0


def test_help_of_every_command(capsys):
    from cryopick.cli import GROUPS

    for cmd in [c for cmds in GROUPS.values() for c in cmds]:
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        assert "example" in capsys.readouterr().out, cmd


@pytest.mark.slow
def test_train_on_cryoppp_png_masks(shared_data, tmp_path):
    """Real CryoPPP micrographs with their 256 px PNG masks (upsampled to the 1024 px images)."""
    from cryopick.data import load_samples

    root = shared_data / "cryoppp-10059"
    data = load_samples([str(root / "train" / "images")], str(root / "train" / "labels"), radius=20, downsample=4)
    assert len(data.samples) == 4
    s = data.samples[0]
    assert s.image.shape == (256, 256) and s.mask.shape == (256, 256)
    assert 0.01 < float((s.mask >= 0.5).mean()) < 0.9  # disks present, not everything
    with pytest.raises(Exception, match="--radius"):
        load_samples([str(root / "train" / "images")], str(root / "train" / "labels"), radius=None, downsample=4)
