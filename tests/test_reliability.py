"""Bad input gets one clear line; a crash loses nothing.

Every case goes through the ``cryopick`` command line (``cryopick.cli.main``): it must
exit non-zero with exactly one stderr line ``cryopick CMD: error: ...`` that names the
file and the problem, show a traceback only with ``--debug``, and leave the files an
earlier run wrote byte-for-byte as they were. Set ``CRYOPICK_PRINT_ERRORS=1`` to print
every message (pytest -s).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch
import yaml

from cryopick.checkpoint import load_checkpoint
from cryopick.cli import main
from cryopick.io import write_mrc
from cryopick.simulate import SimulationConfig, save_simulation, simulate

TINY = ["--base-features", "4", "--patch-size", "32", "--patches-per-epoch", "4", "--batch-size", "4",
        "--epochs", "1", "--device", "cpu"]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# --------------------------------------------------------------------------- helpers


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def expect_error(capsys, argv: list[str], *needles: str, rc: int = 2) -> str:
    """Run ``cryopick ARGV`` (and again with --debug); return its one error line."""
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == rc, f"exit {code}, expected {rc}; stderr:\n{err}\nstdout:\n{out}"
    assert len(lines) == 1, f"expected one stderr line, got:\n{err}"
    line = lines[0]
    assert line.startswith(f"cryopick {argv[0]}: error: "), line
    assert "Traceback" not in err and "internal error" not in line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    if os.environ.get("CRYOPICK_PRINT_ERRORS"):
        with capsys.disabled():
            print(f"\n  [{argv[0]}] {line}")
    code = main([*argv, "--debug"])
    _, err = capsys.readouterr()
    assert code == rc and "Traceback (most recent call last)" in err, err
    assert err.strip().splitlines()[-1] == line
    return line


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rel_sim")
    save_simulation(simulate(SimulationConfig(n=3, size=64, diameter=12, snr=0.5, seed=1)), root)
    return root


@pytest.fixture(scope="module")
def trained(sim, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rel_run")
    rc = main(["train", "--images", str(sim / "micrographs"), "--labels", str(sim / "labels.star"), "--radius", "6",
               "--out", str(out), *TINY])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def picked(sim, trained, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rel_picks")
    rc = main(["pick", "--model", str(trained / "model.pt"), "--out", str(out), str(sim / "micrographs"),
               "--device", "cpu", "--threshold", "0"])
    assert rc == 0 and (out / "picks.star").is_file()
    return out


@pytest.fixture
def old_run(trained, tmp_path) -> Path:
    """An output folder that already holds a finished run."""
    out = tmp_path / "old_run"
    shutil.copytree(trained, out)
    return out


def mic_dir(sim: Path, tmp_path: Path, name: str = "mics") -> Path:
    d = tmp_path / name
    shutil.copytree(sim / "micrographs", d)
    return d


def train_argv(images, labels, out, *extra: str) -> list[str]:
    return ["train", "--images", str(images), "--labels", str(labels), "--radius", "6", "--out", str(out), *TINY,
            *extra]


def expect_train_error(capsys, old_run: Path, images, labels, *needles: str, extra=(), rc: int = 2) -> str:
    """A failing ``train`` into a folder with an earlier run: one line, and the old run intact."""
    before = snapshot(old_run)
    line = expect_error(capsys, train_argv(images, labels, old_run, *extra), *needles, rc=rc)
    assert snapshot(old_run) == before, "a failed run changed files of the earlier run"
    return line


def image_of(path: Path) -> np.ndarray:
    return mrcfile.read(path).astype(np.float32)


# --------------------------------------------------------------------------- micrographs


def test_missing_micrograph(sim, old_run, capsys, tmp_path):
    missing = tmp_path / "nope" / "sim_0000.mrc"
    expect_train_error(capsys, old_run, missing, sim / "labels.star", str(missing), "no such file")


@pytest.mark.skipif(IS_ROOT, reason="root reads files whatever their mode")
def test_unreadable_micrograph(sim, old_run, capsys, tmp_path):
    d = mic_dir(sim, tmp_path)
    os.chmod(d / "sim_0001.mrc", 0)
    try:
        expect_train_error(capsys, old_run, d, sim / "labels.star", "sim_0001.mrc", "cannot read")
    finally:
        os.chmod(d / "sim_0001.mrc", 0o644)


def test_unreadable_micrograph_even_as_root(sim, old_run, capsys, tmp_path, monkeypatch):
    """The same case where chmod cannot make a file unreadable: opening it fails with EACCES."""
    import builtins

    import cryopick.io.micrographs as micrographs

    d = mic_dir(sim, tmp_path)
    locked = d / "sim_0001.mrc"

    def fake_open(file, *args, **kwargs):
        if Path(file) == locked:
            raise PermissionError(13, "Permission denied", str(file))
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(micrographs, "open", fake_open, raising=False)
    expect_train_error(capsys, old_run, d, sim / "labels.star", "sim_0001.mrc", "cannot read", "Permission denied")


@pytest.mark.parametrize("keep, needle", [(3000, "truncated"), (500, "not an MRC file")])
def test_truncated_mrc(sim, old_run, capsys, tmp_path, keep, needle):
    d = mic_dir(sim, tmp_path)
    f = d / "sim_0001.mrc"
    f.write_bytes(f.read_bytes()[:keep])
    expect_train_error(capsys, old_run, d, sim / "labels.star", str(f), needle)


def test_non_mrc_file_with_mrc_name(sim, old_run, capsys, tmp_path):
    d = mic_dir(sim, tmp_path)
    (d / "sim_0001.mrc").write_text("this is a text file, not a micrograph\n" * 100)
    expect_train_error(capsys, old_run, d, sim / "labels.star", "sim_0001.mrc", "not an MRC file")


def test_stack_where_a_micrograph_is_expected(sim, old_run, capsys, tmp_path):
    d = mic_dir(sim, tmp_path)
    write_mrc(d / "sim_0001.mrc", np.random.default_rng(0).normal(size=(3, 64, 64)))
    expect_train_error(capsys, old_run, d, sim / "labels.star", "sim_0001.mrc", "stack of 3 images", "2D micrograph")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels(sim, old_run, capsys, tmp_path, bad):
    d = mic_dir(sim, tmp_path)
    img = image_of(d / "sim_0002.mrc")
    img[5, 7] = bad
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):  # mrcfile warns while writing it
        write_mrc(d / "sim_0002.mrc", img)
    expect_train_error(capsys, old_run, d, sim / "labels.star", "sim_0002.mrc", "NaN or infinite")


def test_constant_image(sim, old_run, capsys, tmp_path):
    d = mic_dir(sim, tmp_path)
    write_mrc(d / "sim_0000.mrc", np.full((64, 64), 3.0))
    expect_train_error(capsys, old_run, d, sim / "labels.star", "sim_0000.mrc", "constant")


def test_mixed_pixel_sizes_are_an_error(sim, old_run, capsys, tmp_path):
    d = mic_dir(sim, tmp_path)
    write_mrc(d / "sim_0001.mrc", image_of(d / "sim_0001.mrc"), pixel_size=3.0)
    expect_train_error(capsys, old_run, d, sim / "labels.star", "sim_0001.mrc", "pixel size 3", "1.5", "--downsample")


def test_mixed_pixel_sizes_with_explicit_downsample_only_warn(sim, capsys, tmp_path):
    d = mic_dir(sim, tmp_path)
    write_mrc(d / "sim_0001.mrc", image_of(d / "sim_0001.mrc"), pixel_size=3.0)
    capsys.readouterr()
    assert main(train_argv(d, sim / "labels.star", tmp_path / "out", "--downsample", "1")) == 0
    out, _ = capsys.readouterr()
    assert "warning:" in out and "pixel size 3" in out
    assert (tmp_path / "out" / "model.pt").is_file()


def test_mixed_pixel_sizes_between_training_and_validation(sim, capsys, tmp_path):
    d = tmp_path / "val"
    d.mkdir()
    write_mrc(d / "sim_0002.mrc", image_of(sim / "micrographs" / "sim_0002.mrc"), pixel_size=3.0)
    train = tmp_path / "train"
    train.mkdir()
    for name in ("sim_0000.mrc", "sim_0001.mrc"):
        shutil.copy(sim / "micrographs" / name, train / name)
    expect_error(capsys, train_argv(train, sim / "labels.star", tmp_path / "out", "--val-images", str(d)),
                 "pixel size", "sim_0002.mrc")


@pytest.mark.parametrize("extra", [["--radius", "40"], ["--radius", "40", "--downsample", "4"]])
def test_particle_larger_than_the_image(sim, old_run, capsys, extra):
    expect_train_error(capsys, old_run, sim / "micrographs", sim / "labels.star", "sim_0000.mrc",
                       "larger than the micrograph", "after downsampling", extra=extra)


def test_hidden_temp_files_are_not_micrographs(sim, trained, tmp_path):
    """What an interrupted atomic write leaves (".NAME.HEX.tmp.mrc") is never read as a micrograph."""
    d = mic_dir(sim, tmp_path)
    (d / ".sim_0003.0badf00d.tmp.mrc").write_bytes(b"\0" * 10)
    assert main(["pick", "--model", str(trained / "model.pt"), "--out", str(tmp_path / "p"), str(d),
                 "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "p" / "pick_summary.json").read_text())
    assert summary["n_micrographs"] == 3


# --------------------------------------------------------------------------- labels


def star_lines(sim: Path) -> list[str]:
    return (sim / "labels.star").read_text().splitlines()


def first_row(lines: list[str], mic: str = "sim_0000") -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(mic))


def test_empty_label_file(sim, old_run, capsys, tmp_path):
    (tmp_path / "empty.star").write_text("")
    expect_train_error(capsys, old_run, sim / "micrographs", tmp_path / "empty.star", "empty.star",
                       "no particle coordinates")


def test_zero_labelled_particles(sim, old_run, capsys, tmp_path):
    header = [line for line in star_lines(sim) if not line.startswith("sim_")]
    (tmp_path / "zero.star").write_text("\n".join(header) + "\n")
    expect_train_error(capsys, old_run, sim / "micrographs", tmp_path / "zero.star", "zero.star",
                       "0 labelled particles")


def test_labelled_micrographs_with_no_particles(sim, old_run, capsys, tmp_path):
    """Box files: one empty file per micrograph we have, the particles on one we do not."""
    labels = tmp_path / "boxes"
    labels.mkdir()
    (labels / "sim_0000.box").write_text("")
    (labels / "other.box").write_text("10 10 12 12\n")
    expect_train_error(capsys, old_run, sim / "micrographs", labels, "boxes", "0 particles")


def test_labels_naming_unknown_micrographs(sim, old_run, capsys, tmp_path):
    (tmp_path / "unknown.star").write_text((sim / "labels.star").read_text().replace("sim_", "other_"))
    expect_train_error(capsys, old_run, sim / "micrographs", tmp_path / "unknown.star", "unknown.star",
                       "none of the 3 labelled micrograph names match", "other_0000", "sim_0000")


@pytest.mark.parametrize("xy", ["200.0\t10.0", "-5.0\t10.0", "10.0\t-3.0"])
def test_coordinates_outside_the_image(sim, old_run, capsys, tmp_path, xy):
    lines = star_lines(sim)
    lines[first_row(lines)] = f"sim_0000.mrc\t{xy}"
    (tmp_path / "outside.star").write_text("\n".join(lines) + "\n")
    expect_train_error(capsys, old_run, sim / "micrographs", tmp_path / "outside.star", "outside.star",
                       "lie outside its 64x64 px image", "sim_0000")


def test_wrong_star_columns(sim, old_run, capsys, tmp_path):
    (tmp_path / "cols.star").write_text((sim / "labels.star").read_text().replace("rlnCoordinateX", "rlnOriginX"))
    expect_train_error(capsys, old_run, sim / "micrographs", tmp_path / "cols.star", "cols.star",
                       "no rlnCoordinateX/rlnCoordinateY columns", "rlnOriginX")


def test_star_row_with_missing_value(sim, old_run, capsys, tmp_path):
    lines = star_lines(sim)
    lines[first_row(lines)] = "sim_0000.mrc\t12.0"
    (tmp_path / "short.star").write_text("\n".join(lines) + "\n")
    expect_train_error(capsys, old_run, sim / "micrographs", tmp_path / "short.star", "short.star",
                       f"line {first_row(lines) + 1} has 2 values for 3 columns")


def test_duplicate_coordinates_warn_and_training_proceeds(sim, capsys, tmp_path):
    lines = star_lines(sim)
    i = first_row(lines)
    lines.insert(i, lines[i])
    (tmp_path / "dup.star").write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(train_argv(sim / "micrographs", tmp_path / "dup.star", tmp_path / "out")) == 0
    out, err = capsys.readouterr()
    warning = [line for line in (out + err).splitlines() if "duplicate particles" in line]
    assert len(warning) == 1 and warning[0].startswith("warning:") and "sim_0000" in warning[0], out + err
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())[0]["epoch"] == 1


# --------------------------------------------------------------------------- outputs


def test_output_folder_is_a_file(sim, capsys, tmp_path):
    f = tmp_path / "a_file"
    f.write_text("keep me")
    expect_error(capsys, train_argv(sim / "micrographs", sim / "labels.star", f), str(f), "not a directory", rc=3)
    expect_error(capsys, train_argv(sim / "micrographs", sim / "labels.star", f / "run"), str(f / "run"),
                 "parent is a file", rc=3)
    assert f.read_text() == "keep me"


def test_pick_output_folder_is_a_file(sim, trained, capsys, tmp_path):
    f = tmp_path / "a_file"
    f.write_text("keep me")
    for out in (f, f / "picks"):
        expect_error(capsys, ["pick", "--model", str(trained / "model.pt"), "--out", str(out),
                              str(sim / "micrographs"), "--device", "cpu"], str(f), rc=3)
    assert f.read_text() == "keep me"


@pytest.mark.skipif(IS_ROOT, reason="root writes into read-only folders")
def test_output_folder_not_writable(sim, capsys, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    try:
        expect_error(capsys, train_argv(sim / "micrographs", sim / "labels.star", ro), str(ro), "not writable", rc=3)
    finally:
        os.chmod(ro, 0o755)


def test_failed_pick_keeps_earlier_picks(sim, trained, picked, capsys, tmp_path):
    out = tmp_path / "picks"
    shutil.copytree(picked, out)
    before = snapshot(out)
    d = mic_dir(sim, tmp_path)
    f = d / "sim_0002.mrc"
    f.write_bytes(f.read_bytes()[:2000])  # the last micrograph is cut short: picking fails after two
    expect_error(capsys, ["pick", "--model", str(trained / "model.pt"), "--out", str(out), str(d),
                          "--device", "cpu"], str(f), "truncated")
    assert snapshot(out) == before


# --------------------------------------------------------------------------- checkpoints


def test_resume_with_the_other_architecture(sim, old_run, capsys):
    expect_train_error(capsys, old_run, sim / "micrographs", sim / "labels.star", "model.pt",
                       "checkpoint is a unet but attention-unet was asked for", "--arch unet",
                       extra=["--resume", "--arch", "attention-unet"])


def test_resume_with_another_width(sim, old_run, capsys):
    expect_train_error(capsys, old_run, sim / "micrographs", sim / "labels.star", "model.pt", "base width 4",
                       extra=["--resume", "--base-features", "8"])


def test_selftrain_init_with_the_other_architecture(sim, trained, capsys, tmp_path):
    out = tmp_path / "st"
    expect_error(capsys, ["selftrain", "--images", str(sim / "micrographs"), "--labels", str(sim / "labels.star"),
                          "--radius", "6", "--out", str(out), *TINY, "--iterations", "1", "--retrain-epochs", "1",
                          "--init", str(trained / "model.pt"), "--arch", "attention-unet"],
                 "model.pt", "checkpoint is a unet but attention-unet was asked for")
    assert not list(out.glob("*.pt"))


def test_selftrain_init_with_the_other_architecture_keeps_an_earlier_run(sim, trained, capsys, tmp_path):
    out = tmp_path / "st"
    out.mkdir()
    (out / "config.yaml").write_text("earlier: run\n")
    main(["selftrain", "--images", str(sim / "micrographs"), "--labels", str(sim / "labels.star"), "--radius", "6",
          "--out", str(out), *TINY, "--init", str(trained / "model.pt"), "--arch", "attention-unet"])
    assert (out / "config.yaml").read_text() == "earlier: run\n"


def test_checkpoint_of_an_incompatible_version(sim, trained, old_run, capsys, tmp_path):
    ckpt = torch.load(trained / "model.pt", map_location="cpu", weights_only=False)
    ckpt["format_version"] = 99
    future = tmp_path / "future.pt"
    torch.save(ckpt, future)
    expect_error(capsys, ["pick", "--model", str(future), "--out", str(tmp_path / "p"), str(sim / "micrographs"),
                          "--device", "cpu"], "future.pt", "format version 99", "expects 1")
    shutil.copy(future, old_run / "model.pt")
    expect_train_error(capsys, old_run, sim / "micrographs", sim / "labels.star", "model.pt", "format version 99",
                       extra=["--resume"])


@pytest.mark.parametrize("kind", ["text", "dict", "micrograph", "truncated", "missing"])
def test_pick_model_that_is_not_a_checkpoint(sim, trained, picked, capsys, tmp_path, kind):
    model = tmp_path / "model.pt"
    if kind == "text":
        model.write_text("not a checkpoint\n")
    elif kind == "dict":
        torch.save({"state_dict": {}}, model)
    elif kind == "micrograph":
        model = sim / "micrographs" / "sim_0000.mrc"
    elif kind == "truncated":
        model.write_bytes((trained / "model.pt").read_bytes()[:5000])
    out = tmp_path / "picks"
    shutil.copytree(picked, out)
    before = snapshot(out)
    line = expect_error(capsys, ["pick", "--model", str(model), "--out", str(out), str(sim / "micrographs"),
                                 "--device", "cpu"], str(model))
    assert "checkpoint" in line
    assert snapshot(out) == before


def test_predict_model_that_is_not_a_checkpoint(sim, capsys, tmp_path):
    model = tmp_path / "weights.pt"
    model.write_text("junk")
    expect_error(capsys, ["predict", "--model", str(model), "--out", str(tmp_path / "maps"),
                          str(sim / "micrographs"), "--device", "cpu"], "weights.pt", "not a readable cryopick checkpoint")


# --------------------------------------------------------------------------- config files


@pytest.mark.parametrize("text, needles", [
    ("train: [epochs: 1\n", ["not valid YAML", "line 2"]),
    ("train:\n\tepochs: 1\n", ["not valid YAML", "tabs"]),
    ("- 1\n- 2\n", ["expected a mapping"]),
    ("train:\n  epochz: 1\n", ["unknown option(s) epochz", "known: epochs"]),
    ("trainer:\n  epochs: 1\n", ["unknown option(s) trainer"]),
    ("train:\n  epochs: many\n", ["train.epochs", "'many'", "an integer"]),
    ("train:\n  lr: fast\n", ["train.lr", "a number"]),
    ("data:\n  radius: [1, 2]\n", ["data.radius", "a number"]),
])
def test_bad_config_file(sim, old_run, capsys, tmp_path, text, needles):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(text)
    expect_train_error(capsys, old_run, sim / "micrographs", sim / "labels.star", "run.yaml", *needles,
                       extra=["--config", str(cfg)])


def test_config_file_missing_or_a_folder(sim, old_run, capsys, tmp_path):
    expect_train_error(capsys, old_run, sim / "micrographs", sim / "labels.star", "nope.yaml", "not found",
                       extra=["--config", str(tmp_path / "nope.yaml")])
    expect_train_error(capsys, old_run, sim / "micrographs", sim / "labels.star", str(tmp_path), "cannot read",
                       extra=["--config", str(tmp_path)])


def test_config_numbers_written_as_text_are_read(tmp_path):
    """YAML 1.1 reads ``1e-3`` as a string; it is taken as the number it means."""
    from cryopick.commands._common import read_config_file

    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"train": {"lr": "1e-3"}, "data": {"images": "mics/"}}))
    c = read_config_file(str(cfg))
    assert c.train.lr == 1e-3 and c.data.images == ["mics/"]


# --------------------------------------------------------------------------- atomic outputs


def test_internal_errors_are_one_line(monkeypatch, capsys):
    import cryopick.commands.evaluate as cmd

    def boom(args):
        raise RuntimeError("first line\nsecond line\nthird line")

    monkeypatch.setattr(cmd, "main", boom)
    capsys.readouterr()
    assert main(["evaluate", "--picks", "a", "--truth", "b"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error: RuntimeError: first line" in err[0] and "--debug" in err[0]
    with pytest.raises(RuntimeError):
        main(["evaluate", "--picks", "a", "--truth", "b", "--debug"])


TEMP_SUFFIX = ".tmp"


def temp_files(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if p.name.startswith(".") and TEMP_SUFFIX in p.name]


def check_run_folder(out: Path) -> None:
    """Every file a reader would open is complete; temporary files are hidden and never a target name."""
    for p in out.iterdir():
        if p.name.startswith("."):
            assert ".tmp" in p.name or p.name.startswith(".cryopick-write-test"), p.name
            continue
        assert p.name in {"model.pt", "best_model.pt", "metrics.json", "config.yaml", "train_summary.json"}, p.name
        if p.suffix == ".pt":
            load_checkpoint(p)
        elif p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".yaml":
            assert isinstance(yaml.safe_load(p.read_text()), dict)


def n_epochs(out: Path) -> int:
    f = out / "metrics.json"
    return len(json.loads(f.read_text())) if f.exists() else 0


def run_and_kill(argv: list[str], env: dict, out: Path, writing: str) -> bool:
    """Start ``argv`` and SIGKILL it while ``out/writing`` is being replaced (its temporary file
    exists and so does the earlier version), or failing that once two more epochs are saved.
    Returns whether the kill caught the write in flight."""
    stem = Path(writing).stem
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done_before, caught = n_epochs(out), False
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if out.is_dir():
                names = os.listdir(out)
                if writing in names and any(n.startswith(f".{stem}.") and ".tmp" in n for n in names):
                    caught = True
                    break
                if n_epochs(out) >= done_before + 2:
                    break
            time.sleep(0.0005)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return caught


def test_sigkill_mid_run_leaves_only_complete_files(sim, tmp_path):
    """Kill a training run twice (best while model.pt, then metrics.json, is being replaced):
    every file in OUT is complete after each kill, and --resume finishes the run."""
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "cryopick.cli", *train_argv(sim / "micrographs", sim / "labels.star", out)]
    argv[argv.index("--epochs") + 1] = "6"
    argv[argv.index("--patches-per-epoch") + 1] = "8"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    for i, writing in enumerate(["model.pt", "metrics.json"]):
        caught = run_and_kill(argv + (["--resume"] if i else []), env, out, writing)
        if os.environ.get("CRYOPICK_PRINT_ERRORS"):
            print(f"killed {'while writing ' + writing if caught else 'between writes'}: {sorted(os.listdir(out))}")
        check_run_folder(out)
        assert load_checkpoint(out / "model.pt")["epoch"] < 6
    resumed = subprocess.run([*argv, "--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    check_run_folder(out)
    assert [r["epoch"] for r in json.loads((out / "metrics.json").read_text())] == [1, 2, 3, 4, 5, 6]
    assert load_checkpoint(out / "model.pt")["epoch"] == 6
    assert not temp_files(out), "the resumed run removes what the killed ones left"
