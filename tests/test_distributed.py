"""Multi-process training, pseudo-labelling and picking on CPU (Gloo) against the single-process run.

Two processes are started with ``torch.multiprocessing.spawn``; each gets the environment
torchrun would set (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT), so ``fit`` joins the
group through ``distributed.init_from_env`` exactly as under ``torchrun``.

Why the tolerances: at the same global batch the two runs compute the same quantities -
the ranks' batches are the two halves of the single-process batch (same patches, same
augmentation draws), BatchNorm statistics are all-reduced over both halves, the focal
loss is a per-pixel mean that the valid-pixel weighting makes exactly decomposable, and
DDP averages the gradients. What differs is the order of float32 additions (two half
sums plus an all-reduce instead of one), ~1e-7 relative per operation: the per-step
gradients agree to ~1e-6 relative when evaluated at the same weights.

- Weights: after 4 AdamW steps at the default lr 1e-3 they agree to ~4e-6 (measured);
  the test allows 1e-4. Two kinds of tensor are left out: the biases of convolutions
  that feed a BatchNorm, and BatchNorm running means. BatchNorm cancels such a bias, so
  its true gradient is exactly 0 and its computed gradient is rounding noise, which Adam
  (update ~ lr * g / |g|) turns into +-lr steps that differ between ANY two summation
  orders - a single-process run on 1 vs 2 threads differs there just as much. They do not
  affect training (train-mode BatchNorm removes them) but the running means absorb them.
  A real mistake moves the compared weights by 1e-2 or more (measured: per-rank
  BatchNorm 4e-2; each rank training on half of the epoch instead of half of each
  batch 5e-2), and the training loss by >1e-3 relative where the correct run agrees to
  1e-7 (test: 1e-5).
- Validation metrics after training use eval-mode BatchNorm, i.e. the running means
  above, so a few pixels near p = 0.5 flip: F1 differs by ~3e-3 and AUC by ~5e-4 even
  between two single-process runs on 1 vs 2 threads; the test allows 2e-2 and 5e-3. The
  sharded evaluation itself is tested exactly: the same model evaluated by two ranks
  (each on its share of the micrographs, counts summed) and by one process gives
  identical counts.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from cryopick import distributed as ddist
from cryopick.checkpoint import load_checkpoint, model_from_checkpoint
from cryopick.config import ModelConfig, PickConfig, TrainConfig
from cryopick.data import Preprocessing, Sample
from cryopick.errors import InputError
from cryopick.io import read_labels
from cryopick.io.micrographs import write_mrc
from cryopick.simulate import SimulationConfig, simulate
from cryopick.targets import particle_mask

WORLD = 2
RADIUS = 8.0
PREP = Preprocessing(downsample=1.0, normalize="none", radius=RADIUS)
TOL_WEIGHTS = 1e-4


def _samples(sizes: list[int], seed: int) -> list[Sample]:
    out = []
    for i, size in enumerate(sizes):
        sim = simulate(SimulationConfig(n=1, size=size, diameter=16, snr=0.5, seed=seed + i))[0]
        mask = particle_mask(sim.image.shape, sim.coords, RADIUS)
        out.append(Sample(f"mic{seed}_{i}", sim.image.astype(np.float32), mask, sim.coords, sim.image.shape))
    return out


def _config() -> TrainConfig:
    # global batch 4 (2 per rank), 8 patches per epoch -> 2 steps per epoch, 2 epochs
    return TrainConfig(epochs=2, batch_size=4, patch_size=64, patches_per_epoch=8, loss="focal", device="cpu",
                       seed=5, tile_size=128)


def _bn_absorbed(model: nn.Module) -> set[str]:
    """Names of convolution biases that feed a BatchNorm, and of BatchNorm running means (see the docstring)."""
    names = set()
    for prefix, m in model.named_modules():
        if isinstance(m, nn.Sequential):
            kids = list(m.named_children())
            for (a, conv), (_, bn) in zip(kids, kids[1:]):
                if isinstance(conv, nn.Conv2d) and conv.bias is not None and isinstance(bn, nn.BatchNorm2d):
                    names.add(f"{prefix}.{a}.bias" if prefix else f"{a}.bias")
        if isinstance(m, nn.BatchNorm2d):
            names.add(f"{prefix}.running_mean")
    return names


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy(samples: list[Sample]) -> list[Sample]:
    return [Sample(s.name, s.image, None if s.mask is None else s.mask.copy(), s.coords, s.original_shape) for s in samples]


def _relabel_all(model, train: list[Sample]) -> tuple[dict, list[np.ndarray]]:
    from cryopick.config import RunConfig, SelfTrainConfig, TrainConfig
    from cryopick.device import DeviceSettings
    from cryopick.pipeline import RunData
    from cryopick.relabel import Orig, Run, relabel

    samples = _copy(train) + [Sample("unlabelled", train[0].image[::-1].copy(), None, None, train[0].image.shape)]
    originals = [Orig(s.mask, s.coords) for s in samples]
    cfg = RunConfig(train=TrainConfig(tile_size=128), selftrain=SelfTrainConfig(pseudo_labels="pixels"))
    run = Run(cfg, Path("."), DeviceSettings(torch.device("cpu"), False, False), ddist.info(), {},
              RunData(samples, [], PREP, []), originals, lambda m: None)
    stats = relabel(run, [model], 0.6, 0.4, pu=False)
    return stats, [s.mask for s in samples]


def _pick(model_path: Path, mics: Path, out: Path) -> dict:
    from cryopick.picking import pick_to_files

    return pick_to_files([str(mics)], [str(model_path)], PickConfig(threshold=0.3, formats=["star", "json"]), out,
                         device="cpu")


def _worker(rank: int, world: int, port: int, root: str, train, val, cfg) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import cryopick.train as tr

    root = Path(root)
    writes: list[str] = []
    import cryopick.runlayout as rl  # fit writes metrics.json through the run-layout module

    save, write_json = tr.save_checkpoint, rl.atomic_write_json
    tr.save_checkpoint = lambda ckpt, path: (writes.append(Path(path).name), save(ckpt, path))[1]
    rl.atomic_write_json = lambda path, obj: (writes.append(Path(path).name), write_json(path, obj))[1]

    result = tr.fit(train, val, PREP, ModelConfig(base_features=4), cfg, root / "run", log=lambda m: None)
    # fit ends with a barrier after rank 0's writes: every rank sees the final checkpoint at once
    seen_epoch = load_checkpoint(root / "run" / "model.pt")["epoch"]
    bn_types = sorted({type(m).__name__ for m in result.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)})

    fixed = model_from_checkpoint(load_checkpoint(root / "run" / "model.pt"))  # the same model on every rank
    metrics = tr.evaluate(fixed, val, torch.device("cpu"), cfg.tile_size)  # sharded, counts summed over ranks
    stats, masks = _relabel_all(fixed, train)
    summary = _pick(root / "run" / "model.pt", root / "mics", root / "picks")
    torch.save({"state": result.model.state_dict(), "history": result.history, "writes": writes,
                "seen_epoch": seen_epoch, "bn_types": bn_types, "relabel": (stats, masks), "pick": summary,
                "metrics": metrics.as_dict(),
                "info": ddist.info()}, root / f"rank{rank}.pt")
    ddist.cleanup()


@pytest.fixture(scope="module")
def data():
    return _samples([96, 96], seed=11), _samples([96, 64, 80], seed=21)


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    """The 2-process run (spawned) and the single-process reference, same config and data."""
    train, val = data
    root = tmp_path_factory.mktemp("ddp")
    for s in val:
        write_mrc(root / "mics" / f"{s.name}.mrc", s.image)
    mp.spawn(_worker, args=(WORLD, _free_port(), str(root), train, val, _config()), nprocs=WORLD, join=True)
    ranks = [torch.load(root / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]

    from cryopick.train import evaluate, fit

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = fit(train, val, PREP, ModelConfig(base_features=4), _config(), root / "single", log=lambda m: None)
        fixed = model_from_checkpoint(load_checkpoint(root / "run" / "model.pt"))
        metrics = evaluate(fixed, val, torch.device("cpu"), _config().tile_size)
        relabel = _relabel_all(fixed, train)
        pick = _pick(root / "run" / "model.pt", root / "mics", root / "single_picks")
    finally:
        torch.set_num_threads(threads)
    return {"root": root, "ranks": ranks, "single": single, "relabel": relabel, "pick": pick,
            "metrics": metrics.as_dict()}


@pytest.mark.slow
def test_ranks_ran_distributed_and_agree_exactly(runs):
    r0, r1 = runs["ranks"]
    assert (r0["info"].rank, r1["info"].rank) == (0, 1) and r0["info"].world == WORLD and r0["info"].backend == "gloo"
    for k, v in r0["state"].items():
        assert torch.equal(v, r1["state"][k]), k  # DDP: identical updates on every rank
    assert r0["history"][-1]["train_loss"] == r1["history"][-1]["train_loss"]
    assert r0["history"][-1]["f1"] == r1["history"][-1]["f1"]
    assert r0["bn_types"] == r1["bn_types"] == ["BatchNorm2d"]  # synchronised BatchNorm reverted after fit


@pytest.mark.slow
def test_two_processes_match_single_process_at_same_global_batch(runs):
    single, r0 = runs["single"], runs["ranks"][0]
    ref = single.model.state_dict()
    skip = _bn_absorbed(single.model)
    assert len(skip) > 10 and "encoders.0.0.bias" in skip and "head.bias" not in skip
    compared = [k for k, v in ref.items() if v.is_floating_point() and k not in skip]
    worst = max(float((r0["state"][k].double() - ref[k].double()).abs().max()) for k in compared)
    assert worst < TOL_WEIGHTS, f"max |w_ddp - w_single| = {worst:.3g}"
    for k, v in ref.items():
        if not v.is_floating_point():
            assert torch.equal(r0["state"][k], v), k  # num_batches_tracked: the same number of steps
    for a, b in zip(r0["history"], single.history):
        assert a["epoch"] == b["epoch"]
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["lr"] == pytest.approx(b["lr"])
        assert a["auc"] == pytest.approx(b["auc"], abs=5e-3)
        for key in ["precision", "recall", "f1", "iou"]:
            assert a[key] == pytest.approx(b[key], abs=2e-2), key
        assert a["n_pixels"] == b["n_pixels"]  # every validation micrograph counted exactly once


@pytest.mark.slow
def test_sharded_evaluation_is_exact(runs):
    for r in runs["ranks"]:
        assert r["metrics"] == runs["metrics"]


@pytest.mark.slow
def test_only_rank0_writes_and_others_wait(runs):
    r0, r1 = runs["ranks"]
    assert r1["writes"] == []
    assert r0["writes"].count("model.pt") == 2 and r0["writes"].count("metrics.json") == 2
    assert "best_model.pt" in r0["writes"]
    assert r0["seen_epoch"] == r1["seen_epoch"] == 2
    history = json.loads((runs["root"] / "run" / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]


@pytest.mark.slow
def test_sharded_pseudo_labelling_equals_single_process(runs):
    stats, masks = runs["relabel"]
    for r in runs["ranks"]:
        r_stats, r_masks = r["relabel"]
        assert r_stats == pytest.approx(stats, nan_ok=True)
        assert len(r_masks) == len(masks)
        for a, b in zip(r_masks, masks):
            assert a.dtype == np.float32
            np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_sharded_picking_equals_single_process(runs):
    root, single = runs["root"], runs["pick"]
    for r in runs["ranks"]:
        assert r["pick"]["per_micrograph"] == single["per_micrograph"]
        assert r["pick"]["n_picks"] == single["n_picks"] and r["pick"]["processes"] == WORLD
    a, b = read_labels(root / "picks" / "picks.star"), read_labels(root / "single_picks" / "picks.star")
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_allclose(a[name].xy, b[name].xy)
        np.testing.assert_allclose(a[name].scores, b[name].scores)
    assert json.loads((root / "picks" / "pick_summary.json").read_text())["n_micrographs"] == 3


# --------------------------------------------------------------------------- single-process units


def test_shard_covers_every_item_once():
    items = list(range(11))
    parts = [ddist.shard(items, r, 3) for r in range(3)]
    assert parts == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert sorted(sum(parts, [])) == items
    assert ddist.shard(items) == items  # single process: everything
    assert ddist.shard([], 1, 2) == []
    assert ddist.merge_shards([[(i, f"x{i}") for i in p] for p in parts]) == [f"x{i}" for i in items]
    with pytest.raises(ValueError):
        ddist.shard(items, 2, 2)


def test_global_batch_sampler_splits_each_batch():
    single = list(ddist.GlobalBatchSampler(12, 4).indices())
    ranks = [ddist.GlobalBatchSampler(12, 4, r, 2).indices() for r in range(2)]
    assert ranks == [[0, 1, 4, 5, 8, 9], [2, 3, 6, 7, 10, 11]]
    for b in range(3):  # global batch b = the ranks' b-th local batches, in rank order
        assert ranks[0][2 * b : 2 * b + 2] + ranks[1][2 * b : 2 * b + 2] == single[4 * b : 4 * b + 4]
    s = ddist.GlobalBatchSampler(12, 4, 1, 2)
    s.set_epoch(3)
    assert next(iter(s)) == (3, 2) and len(s) == 6
    with pytest.raises(InputError, match="divisible"):
        ddist.GlobalBatchSampler(12, 6, 0, 4)
    with pytest.raises(InputError, match="multiple"):
        ddist.GlobalBatchSampler(10, 4, 0, 2)


def test_batch_divisibility_checked_at_config_time(monkeypatch):
    from cryopick.train import resolve_train_config

    train = _samples([64], seed=3)
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(InputError, match="divisible by the number of processes"):
        resolve_train_config(TrainConfig(batch_size=4, device="cpu"), torch.device("cpu"), train)
    monkeypatch.setenv("WORLD_SIZE", "2")
    resolve_train_config(TrainConfig(batch_size=4, device="cpu"), torch.device("cpu"), train)


def test_not_launched_distributed_is_a_noop(monkeypatch):
    for v in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(v, raising=False)
    d = ddist.init_from_env("cpu")
    assert (d.rank, d.world, d.enabled, d.is_main) == (0, 1, False, True)
    assert ddist.is_main() and not ddist.is_distributed()
    ddist.barrier()
    assert ddist.all_reduce_sum(2.5) == 2.5 and ddist.all_gather_object({"a": 1}) == [{"a": 1}]
    assert ddist.broadcast_object(7) == 7
    ddist.cleanup()


def test_sync_batchnorm_roundtrip_keeps_parameters():
    from cryopick.models import build_model

    model = build_model("attention-unet", 4)
    params = {n: p for n, p in model.named_parameters()}
    ddist.sync_batchnorm(model, torch.device("cpu"))
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bns and all(type(m) is ddist.AllReduceBatchNorm2d for m in bns)
    assert all(p is params[n] for n, p in model.named_parameters())  # optimizer references stay valid
    x = torch.randn(2, 1, 32, 32)
    y_sync = model(x)  # no process group: plain BatchNorm behaviour
    ddist.unsync_batchnorm(model)
    assert all(type(m) is nn.BatchNorm2d for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    assert all(p is params[n] for n, p in model.named_parameters())
    torch.testing.assert_close(model(x), y_sync, rtol=0, atol=0)


@pytest.mark.slow
def test_torchrun_cli_train(tmp_path):
    """``torchrun -m cryopick.cli train`` end to end: rank 0 writes the run directory, the log says 2 processes."""
    import subprocess
    import sys

    from cryopick.splits import simulated_splits

    sim = simulated_splits(tmp_path / "sim", SimulationConfig(size=96, diameter=16, snr=0.5, seed=1), 2, 1, 0)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    for v in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(v, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "cryopick.cli",
           "train", "--images", str(sim.train_mics), "--labels", str(sim.train_labels), "--val-images", str(sim.val_mics),
           "--val-labels", str(sim.val_labels), "--radius", "8", "--epochs", "1", "--base-features", "4",
           "--patch-size", "64", "--patches-per-epoch", "8", "--batch-size", "4", "--device", "cpu",
           "--out", str(tmp_path / "run")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "distributed: 2 processes (gloo), global batch 4 = 2 x 2" in proc.stdout
    for f in ["best_model.pt", "model.pt", "metrics.json", "config.yaml", "train_summary.json"]:
        assert (tmp_path / "run" / f).is_file(), f
    assert load_checkpoint(tmp_path / "run" / "model.pt")["epoch"] == 1
    assert not list((tmp_path / "run").glob(".*.tmp*"))  # no half-written files left by racing writers


def test_persistent_workers_follow_the_epoch(data, tmp_path):
    """DataLoader workers (kept alive across epochs) serve each epoch's own plan: same run as in-process loading."""
    import dataclasses

    from cryopick.train import fit

    train, val = data
    runs = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 workers + 2 intra-op threads on 2 cores: OpenMP barriers stall (10x slower)
    try:
        for workers in (0, 2):
            cfg = dataclasses.replace(_config(), num_workers=workers)
            runs.append(fit(train, val[:1], PREP, ModelConfig(base_features=4), cfg, tmp_path / str(workers),
                            log=lambda m: None))
    finally:
        torch.set_num_threads(threads)
    a, b = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["train_loss"] for h in runs[0].history] == [h["train_loss"] for h in runs[1].history]
