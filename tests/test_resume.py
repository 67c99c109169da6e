"""A run killed (SIGKILL) mid-way and restarted with ``--resume`` ends where an uninterrupted run ends.

Each run is a ``cryopick`` subprocess on the CPU with one thread (``OMP_NUM_THREADS=1``),
so the numbers are bit-for-bit repeatable; metrics are compared to 1e-6 (wall-clock
``seconds`` are ignored).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cryopick.checkpoint import load_checkpoint
from cryopick.simulate import SimulationConfig, save_simulation, simulate

TINY = ["--radius", "6", "--base-features", "4", "--patch-size", "32", "--patches-per-epoch", "16",
        "--batch-size", "4", "--device", "cpu", "--seed", "3"]
TOL = 1e-6
WAIT_S = 120  # generous: the machine may be loaded


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONWARNINGS="ignore")
    env.pop("CRYOPICK_DEBUG", None)
    return env


def cryopick(*args: str) -> list[str]:
    return [sys.executable, "-m", "cryopick.cli", *args]


def run_to_end(argv: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, env=cli_env(), capture_output=True, text=True, timeout=WAIT_S)
    assert proc.returncode == 0, f"{' '.join(argv)}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def kill_when(argv: list[str], ready, poll_s: float = 0.01) -> None:
    """Start ``argv``; SIGKILL it as soon as ``ready()`` is true. Fails if it ends by itself first."""
    proc = subprocess.Popen(argv, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + WAIT_S
    try:
        while time.monotonic() < deadline:
            if ready():
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                assert proc.returncode == -signal.SIGKILL
                return
            if proc.poll() is not None:
                pytest.fail(f"run ended (rc {proc.returncode}) before it could be killed: {proc.stderr.read()}")
            time.sleep(poll_s)
        pytest.fail("timed out waiting for the kill point")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def json_records(path: Path) -> list | dict | None:
    """Parsed JSON, or None while the file does not exist yet (it is written atomically)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def assert_records_equal(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want), (len(got), len(want))
    for g, w in zip(got, want):
        assert set(g) == set(w), (sorted(g), sorted(w))
        for key in w:
            if key == "seconds":
                continue
            if isinstance(w[key], (int, float)) and not isinstance(w[key], bool):
                assert g[key] == pytest.approx(w[key], abs=TOL, nan_ok=True), (g.get("epoch"), key, g[key], w[key])
            else:
                assert g[key] == w[key], (key, g[key], w[key])


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume_sim")
    save_simulation(simulate(SimulationConfig(n=3, size=64, diameter=12, snr=0.5, seed=5)), root)
    return root


def train_args(sim: Path, out: Path, *extra: str) -> list[str]:
    return cryopick("train", "--images", str(sim / "micrographs"), "--labels", str(sim / "labels.star"),
                    "--out", str(out), "--epochs", "4", *TINY, *extra)


@pytest.mark.slow
@pytest.mark.parametrize("extra", [(), ("--ensemble", "1", "--ema-epochs", "0")], ids=["defaults", "one-raw-network"])
def test_train_killed_after_epoch_2_resumes_to_the_same_metrics(sim, tmp_path, extra):
    ref, out = tmp_path / "reference", tmp_path / "killed"
    run_to_end(train_args(sim, ref, *extra))
    reference = json.loads((ref / "metrics.json").read_text())
    assert [r["epoch"] for r in reference] == [1, 2, 3, 4]
    assert all("f1" in r and "train_loss" in r for r in reference)  # validation ran every epoch

    kill_when(train_args(sim, out, *extra), lambda: len(json_records(out / "metrics.json") or []) >= 2)
    ckpt = load_checkpoint(out / "model.pt")
    assert 2 <= ckpt["epoch"] < 4, "the kill must land before the last epoch for the test to mean anything"
    assert not (out / "train_summary.json").exists()

    if not extra:  # the defaults: the model is the weight average; the raw weights (the resume point) differ
        assert ckpt["ema"]["steps"] == 4 * ckpt["epoch"]  # 16 patches of 4 a step
        assert any(not torch.equal(ckpt["train_weights"][k], v) for k, v in ckpt["model_state"].items())
    proc = run_to_end(train_args(sim, out, *extra, "--resume"))
    assert f"from epoch {ckpt['epoch'] + 1}" in proc.stdout
    assert_records_equal(json.loads((out / "metrics.json").read_text()), reference)
    assert load_checkpoint(out / "model.pt")["epoch"] == 4
    assert load_checkpoint(out / "best_model.pt")["best_epoch"] == load_checkpoint(ref / "best_model.pt")["best_epoch"]
    summary, ref_summary = (json.loads((d / "train_summary.json").read_text()) for d in (out, ref))
    assert summary["pick_threshold"] == pytest.approx(ref_summary["pick_threshold"], abs=TOL)
    # killed in the first network, resumed without --ensemble: the whole ensemble it was started as
    assert summary.get("ensemble", {}).get("seeds") == ref_summary.get("ensemble", {}).get("seeds")


def selftrain_args(sim: Path, out: Path, *extra: str) -> list[str]:
    return cryopick("selftrain", "--images", str(sim / "micrographs"), "--labels", str(sim / "labels.star"),
                    "--out", str(out), "--epochs", "2", "--iterations", "3", "--retrain-epochs", "1", *TINY, *extra)


@pytest.mark.slow
def test_selftrain_killed_between_iterations_resumes_to_the_same_metrics(sim, tmp_path):
    ref, out = tmp_path / "reference", tmp_path / "killed"
    run_to_end(selftrain_args(sim, ref))
    reference = json.loads((ref / "training_summary.json").read_text())
    assert [it["iteration"] for it in reference["iterations"]] == [1, 2, 3]

    kill_when(selftrain_args(sim, out), lambda: (out / "model_iteration_1.pt").exists())
    assert not (out / "final_model.pt").exists() and not (out / "model_iteration_3.pt").exists()
    load_checkpoint(out / "model_iteration_1.pt")  # complete, not half-written

    proc = run_to_end(selftrain_args(sim, out, "--resume"))
    assert "iteration 1 already done" in proc.stdout
    summary = json.loads((out / "training_summary.json").read_text())
    assert [it["iteration"] for it in summary["iterations"]] == [1, 2, 3]
    for got, want in zip(summary["iterations"], reference["iterations"]):
        assert_records_equal([got["validation"]], [want["validation"]])
        assert got["train_loss"] == pytest.approx(want["train_loss"], abs=TOL)
        for key in ("pseudo_positive", "reliable_negative", "ignored"):
            assert got[key] == pytest.approx(want[key], abs=TOL), key
    assert_records_equal([summary["baseline"]], [reference["baseline"]])
    assert_records_equal([summary["final"]], [reference["final"]])
