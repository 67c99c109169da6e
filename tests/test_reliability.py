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
               "--out", str(out), *TINY, "--ensemble", "1"])
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
            "--ensemble", "1", *extra]  # one network: these tests are about the run folder, not the ensemble


def expect_train_error(capsys, old_run: Path, images, labels, *needles: str, extra=(), rc: int = 2) -> str:
    """A failing ``train`` into a folder with an earlier run: one line, and the old run intact.
    Without ``--resume`` it runs with ``--overwrite``: a bad input must keep the run it would replace."""
    before = snapshot(old_run)
    extra = [*extra] if "--resume" in extra else [*extra, "--overwrite"]
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


@pytest.mark.slow
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


@pytest.mark.slow
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
                          "--device", "cpu", "--overwrite"], str(f), "truncated")
    assert snapshot(out) == before
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []  # no staging folder left


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
    for extra in ([], ["--overwrite"]):  # refused; or --overwrite, which checks --init before it removes anything
        assert main(["selftrain", "--images", str(sim / "micrographs"), "--labels", str(sim / "labels.star"),
                     "--radius", "6", "--out", str(out), *TINY, "--init", str(trained / "model.pt"), "--arch",
                     "attention-unet", *extra]) != 0
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
                                 "--device", "cpu", "--overwrite"], str(model))
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
        if p.name.startswith("."):  # a killed run leaves its lock file; the next run takes it over
            assert ".tmp" in p.name or p.name.startswith(".cryopick-write-test") or p.name == ".cryopick.lock", p.name
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


@pytest.mark.slow
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


# --------------------------------------------------------------------------- run folders are never silently replaced


def pick_argv(trained: Path, out: Path, mics, *extra: str) -> list[str]:
    return ["pick", "--model", str(trained / "model.pt"), "--out", str(out), str(mics), "--device", "cpu", *extra]


def selftrain_argv(sim: Path, out: Path, *extra: str) -> list[str]:
    return ["selftrain", "--images", str(sim / "micrographs"), "--labels", str(sim / "labels.star"), "--radius", "6",
            "--out", str(out), *TINY, "--iterations", "1", "--retrain-epochs", "1", *extra]


def earlier_picks(picked: Path, tmp_path: Path) -> Path:
    out = tmp_path / "picks"
    shutil.copytree(picked, out)
    return out


def hidden_siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith("."))


def test_train_into_an_earlier_run_without_resume(sim, old_run, capsys):
    before = snapshot(old_run)
    expect_error(capsys, train_argv(sim / "micrographs", sim / "labels.star", old_run), str(old_run),
                 "holds an earlier run", "model.pt", "--resume", "--overwrite", "another --out", rc=3)
    assert snapshot(old_run) == before


def test_selftrain_into_an_earlier_run_without_resume(sim, old_run, capsys):
    before = snapshot(old_run)
    expect_error(capsys, selftrain_argv(sim, old_run), str(old_run), "holds an earlier run", "--resume", "--overwrite",
                 rc=3)
    assert snapshot(old_run) == before


def test_resume_and_overwrite_together(sim, old_run, capsys):
    expect_train_error(capsys, old_run, sim / "micrographs", sim / "labels.star", "--resume", "--overwrite",
                       "pass one of them", extra=["--resume", "--overwrite"])


def test_train_overwrite_replaces_the_earlier_run(sim, old_run, capsys):
    """--overwrite removes every file of the earlier run (a self-training leftover too); other files stay."""
    (old_run / "model_iteration_7.pt").write_bytes(b"stale")
    (old_run / "iteration_7").mkdir()
    (old_run / "notes.txt").write_text("mine")
    assert yaml.safe_load((old_run / "config.yaml").read_text())["train"]["seed"] == 42
    assert main(train_argv(sim / "micrographs", sim / "labels.star", old_run, "--overwrite", "--seed", "7")) == 0
    assert not (old_run / "model_iteration_7.pt").exists() and not (old_run / "iteration_7").exists()
    assert (old_run / "notes.txt").read_text() == "mine"
    assert yaml.safe_load((old_run / "config.yaml").read_text())["train"]["seed"] == 7
    assert load_checkpoint(old_run / "model.pt")["config"]["train"]["seed"] == 7
    assert not (old_run / ".cryopick.lock").exists()


def test_selftrain_overwrite_replaces_the_earlier_run(sim, trained, old_run, capsys):
    (old_run / "model_iteration_3.pt").write_bytes(b"stale")  # of an earlier run with more iterations
    assert main(selftrain_argv(sim, old_run, "--init", str(trained / "model.pt"), "--overwrite")) == 0
    names = sorted(p.name for p in old_run.iterdir())
    assert "model_iteration_3.pt" not in names and "train_summary.json" not in names, names
    assert {"baseline_model.pt", "model_iteration_1.pt", "final_model.pt", "training_summary.json"} <= set(names)


def test_pick_into_earlier_picks_without_overwrite(sim, trained, picked, capsys, tmp_path):
    out = earlier_picks(picked, tmp_path)
    before = snapshot(out)
    expect_error(capsys, pick_argv(trained, out, sim / "micrographs"), str(out), "holds earlier outputs",
                 "picks.star", "--overwrite", "another --out", rc=3)
    assert snapshot(out) == before


def test_pick_overwrite_replaces_the_whole_output_set(sim, trained, capsys, tmp_path):
    """Three micrographs picked, then one with --overwrite: no .box file of the first run survives."""
    out = tmp_path / "picks"
    assert main(pick_argv(trained, out, sim / "micrographs", "--format", "box", "--box-size", "12",
                          "--threshold", "0")) == 0
    assert len(list((out / "box").glob("*.box"))) == 3
    one = sim / "micrographs" / "sim_0001.mrc"
    assert main(pick_argv(trained, out, one, "--format", "star", "--format", "box", "--box-size", "12",
                          "--overwrite")) == 0
    assert sorted(p.name for p in (out / "box").iterdir()) == ["sim_0001.box"]
    summary = json.loads((out / "pick_summary.json").read_text())
    assert summary["n_micrographs"] == 1 and all(Path(o).is_file() for o in summary["outputs"]), summary["outputs"]
    assert all(str(out) in o for o in summary["outputs"])
    assert hidden_siblings(out) == [] and not (out / ".cryopick.lock").exists()


def test_pick_overwrite_refuses_a_folder_with_other_files(sim, trained, picked, capsys, tmp_path):
    out = earlier_picks(picked, tmp_path)
    (out / "my_notes.txt").write_text("mine")
    before = snapshot(out)
    expect_error(capsys, pick_argv(trained, out, sim / "micrographs", "--overwrite"), str(out), "my_notes.txt",
                 "does not write", rc=3)
    assert snapshot(out) == before


def test_pick_overwrite_refuses_the_folder_it_runs_in(sim, trained, picked, capsys, tmp_path, monkeypatch):
    out = earlier_picks(picked, tmp_path)
    before = snapshot(out)
    monkeypatch.chdir(out)
    expect_error(capsys, pick_argv(trained, Path("."), sim / "micrographs", "--overwrite"), "runs inside it", rc=3)
    assert snapshot(out) == before


def test_pick_beside_other_files_is_allowed(sim, trained, tmp_path):
    out = tmp_path / "project"
    out.mkdir()
    (out / "my_notes.txt").write_text("mine")
    assert main(pick_argv(trained, out, sim / "micrographs")) == 0
    assert (out / "picks.star").is_file() and (out / "my_notes.txt").read_text() == "mine"


def test_predict_into_earlier_maps(sim, trained, capsys, tmp_path):
    out = tmp_path / "maps"
    argv = ["predict", "--model", str(trained / "model.pt"), "--out", str(out), str(sim / "micrographs"),
            "--device", "cpu", "--threshold", "0.5"]
    assert main(argv) == 0
    before = snapshot(out)
    assert len(before) == 6
    expect_error(capsys, argv, str(out), "holds earlier outputs", "sim_0000_mask.mrc", "--overwrite", rc=3)
    assert snapshot(out) == before
    assert main([*argv[:-2], "--overwrite"]) == 0  # no --threshold now: the masks of the first run go too
    assert sorted(p.name for p in out.iterdir()) == ["sim_0000_prob.mrc", "sim_0001_prob.mrc", "sim_0002_prob.mrc"]


LOCK_HOLDER = """
import sys, time
from cryopick.io.outdir import folder_lock
with folder_lock(sys.argv[1], "pick"):
    print("locked", flush=True)
    time.sleep(120)
"""


def hold_lock(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_writer_is_stopped_and_a_killed_writers_lock_is_stale(sim, trained, picked, capsys, tmp_path):
    out = earlier_picks(picked, tmp_path)
    before = snapshot(out)
    holder = hold_lock(out)
    try:
        line = expect_error(capsys, pick_argv(trained, out, sim / "micrographs", "--overwrite"), str(out),
                            "another cryopick", f"pid {holder.pid}", "cryopick pick", "wait for it", rc=3)
        assert "choose another --out" in line
        assert snapshot(out) == {**before, ".cryopick.lock": (out / ".cryopick.lock").read_bytes()}
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (out / ".cryopick.lock").exists()  # left behind by the killed writer: it blocks nobody
    assert main(pick_argv(trained, out, sim / "micrographs", "--overwrite")) == 0
    assert not (out / ".cryopick.lock").exists()


def test_lock_stops_a_second_training(sim, old_run, capsys):
    from cryopick.io.outdir import folder_lock

    with folder_lock(old_run, "train"):
        before = snapshot(old_run)
        expect_error(capsys, train_argv(sim / "micrographs", sim / "labels.star", old_run, "--resume"), str(old_run),
                     "another cryopick", f"pid {os.getpid()}", rc=3)
        assert snapshot(old_run) == before


def test_lock_without_flock_treats_a_dead_pid_as_stale(sim, trained, capsys, tmp_path, monkeypatch):
    import socket

    import cryopick.io.outdir as outdir

    monkeypatch.setattr(outdir, "fcntl", None)
    out = tmp_path / "picks"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".cryopick.lock").write_text(f"{dead.pid} {socket.gethostname()} {time.time():.0f} cryopick pick\n")
    assert main(pick_argv(trained, out, sim / "micrographs")) == 0
    assert not (out / ".cryopick.lock").exists()
    (tmp_path / "live").mkdir()
    (tmp_path / "live" / ".cryopick.lock").write_text(f"{os.getpid()} {socket.gethostname()} 0 cryopick train\n")
    expect_error(capsys, pick_argv(trained, tmp_path / "live", sim / "micrographs"), "another cryopick",
                 f"pid {os.getpid()}", rc=3)


# --------------------------------------------------------------------------- evaluation says what it scored


def one_mic_picks(sim: Path, picked: Path, tmp_path: Path, mic: str = "sim_0001") -> Path:
    """The picks of one micrograph only, in a folder of their own (no pick_summary.json)."""
    lines = (picked / "picks.star").read_text().splitlines()
    keep = [line for line in lines if not line.startswith("sim_") or line.startswith(mic)]
    f = tmp_path / "one" / "picks.star"
    f.parent.mkdir()
    f.write_text("\n".join(keep) + "\n")
    return f


def evaluate_argv(picks, truth, *extra: str) -> list[str]:
    return ["evaluate", "--picks", str(picks), "--truth", str(truth), "--radius", "6", *extra]


def test_evaluate_reports_micrographs_without_picks(sim, picked, capsys, tmp_path):
    picks = one_mic_picks(sim, picked, tmp_path)
    capsys.readouterr()
    assert main(evaluate_argv(picks, sim / "labels_true.star", "--out", str(tmp_path / "all"))) == 0
    out = capsys.readouterr().out
    warning = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "2 of 3 micrographs with truth have no picks (sim_0000, sim_0002)" in warning[0]
    assert "complete misses" in warning[0] and "--only-picked" in warning[0]
    counted = json.loads((tmp_path / "all" / "metrics.json").read_text())
    assert counted["unpicked_micrographs"] == ["sim_0000", "sim_0002"] and not counted["unpicked_excluded"]

    assert main(evaluate_argv(picks, sim / "labels_true.star", "--only-picked", "--out", str(tmp_path / "one"))) == 0
    out = capsys.readouterr().out
    assert "left out 2 with truth but no picks (sim_0000, sim_0002)" in out and "warning:" not in out
    only = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert only["scored_micrographs"] == ["sim_0001"] and only["unpicked_excluded"]
    assert only["overall"]["n_truth"] < counted["overall"]["n_truth"]
    assert only["overall"]["recall"] > counted["overall"]["recall"]


def test_evaluate_knows_micrographs_picked_with_no_picks(sim, picked, capsys, tmp_path):
    """A micrograph the pick run's pick_summary.json lists was picked, even with 0 picks: no warning."""
    picks = one_mic_picks(sim, picked, tmp_path)
    shutil.copy(picked / "pick_summary.json", picks.parent / "pick_summary.json")
    capsys.readouterr()
    assert main(evaluate_argv(picks, sim / "labels_true.star")) == 0
    assert "warning:" not in capsys.readouterr().out


def test_evaluate_only_picked_with_nothing_picked(sim, picked, capsys, tmp_path):
    star = tmp_path / "none.star"
    star.write_text("\n".join(line for line in (picked / "picks.star").read_text().splitlines()
                              if not line.startswith("sim_")) + "\n")
    expect_error(capsys, evaluate_argv(star, sim / "labels_true.star", "--only-picked"), "none.star", "--only-picked",
                 "none of the 3 micrographs with truth has picks")


MASK_XY = {"m_0": [[30.3, 25.1], [70.6, 30.2], [100.2, 60.7]], "m_1": [[40.5, 90.4], [90.1, 100.3], [60.2, 62.8]]}


def mask_case(tmp_path: Path) -> tuple[Path, Path]:
    """Two 128 px micrographs, and the particles on them (radius 12 px) as picks."""
    mics = tmp_path / "mics"
    mics.mkdir()
    rows = []
    for stem, xy in MASK_XY.items():
        write_mrc(mics / f"{stem}.mrc", np.random.default_rng(0).normal(size=(128, 128)))
        rows += [f"{stem}.mrc\t{x}\t{y}" for x, y in xy]
    picks = tmp_path / "picks.star"
    picks.write_text("data_\n\nloop_\n_rlnMicrographName\n_rlnCoordinateX\n_rlnCoordinateY\n" + "\n".join(rows) + "\n")
    return mics, picks


def write_masks(folder: Path, factor: int) -> Path:
    """Disk masks of the particles, ``factor`` x smaller than the micrographs (as CryoPPP's), 0/255 PNG."""
    from PIL import Image

    from cryopick.targets import disk_mask

    folder.mkdir()
    for stem, xy in MASK_XY.items():
        mask = disk_mask((128 // factor, 128 // factor), (np.asarray(xy) + 0.5) / factor - 0.5, 12.0 / factor)
        Image.fromarray((mask * 255).astype(np.uint8)).save(folder / f"{stem}.png")
    return folder


def test_evaluate_against_mask_images(capsys, tmp_path):
    """Mask truth: the particles themselves as picks score perfectly, whatever the mask size."""
    mics, picks = mask_case(tmp_path)
    for factor in (1, 2):
        masks = write_masks(tmp_path / f"masks{factor}", factor)
        capsys.readouterr()
        assert main(evaluate_argv(picks, masks, "--images", str(mics), "--out", str(tmp_path / f"eval{factor}"))) == 0
        m = json.loads((tmp_path / f"eval{factor}" / "metrics.json").read_text())["overall"]
        assert m["recall"] == 1 and m["precision"] == 1 and m["mean_error"] < 1.5, (factor, m)
        assert "warning:" not in capsys.readouterr().out
    capsys.readouterr()
    assert main(evaluate_argv(picks, tmp_path / "masks1")) == 0  # masks of the micrographs' size: no --images needed
    assert "note:" in capsys.readouterr().out
    expect_error(capsys, evaluate_argv(picks, tmp_path / "masks2"), "picks.star", "beyond its 64x64 px mask",
                 "--images MICS")


def test_evaluate_mask_truth_named_like_no_micrograph(capsys, tmp_path):
    mics, picks = mask_case(tmp_path)
    masks = write_masks(tmp_path / "masks", 1)
    for p in masks.iterdir():
        p.rename(p.with_name("other_" + p.name))
    expect_error(capsys, evaluate_argv(picks, masks, "--images", str(mics)), "masks",
                 "no mask image is named like a micrograph of --images", "m_0")


# --------------------------------------------------------------------------- every bad value is one line, before any work


@pytest.mark.parametrize("flag, value, needle", [
    ("--radius", "nan", "a finite number above 0"), ("--radius", "inf", "a finite number above 0"),
    ("--radius", "-3", "a finite number above 0"), ("--radius", "0", "a finite number above 0"),
    ("--seed", "-1", "from 0 to 4294967295"), ("--seed", str(2**32), "from 0 to 4294967295"),
    ("--epochs", "0", "a whole number >= 1"), ("--lr", "nan", "a finite number above 0"),
    ("--patch-size", "8", ">= 32"), ("--val-fraction", "1.5", "up to (not including) 1"),
    ("--downsample", "-2", "above 0"), ("--mask-radius-scale", "inf", "above 0"),
    ("--focal-alpha", "1.5", "between 0 and 1"), ("--focal-gamma", "-1", "a finite number >= 0"),
])
def test_bad_training_value(sim, old_run, capsys, flag, value, needle):
    line = expect_train_error(capsys, old_run, sim / "micrographs", sim / "labels.star", flag, needle,
                              extra=[flag, value])
    assert line.startswith(f"cryopick train: error: {flag} is ")


def test_bad_value_in_a_config_file_names_the_flag(sim, old_run, capsys, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("data:\n  radius: .nan\n")
    argv = train_argv(sim / "micrographs", sim / "labels.star", old_run, "--config", str(cfg), "--overwrite")
    del argv[argv.index("--radius"):argv.index("--radius") + 2]
    before = snapshot(old_run)
    expect_error(capsys, argv, "--radius is nan", "above 0")
    cfg.write_text("train:\n  tile_size: 0\n")
    expect_error(capsys, argv, "train.tile_size in --config is 0", ">= 32")
    assert snapshot(old_run) == before


@pytest.mark.parametrize("extra, needles", [
    (["--positive-threshold", "1.5"], ["--positive-threshold is 1.5", "between 0 and 1"]),
    (["--negative-threshold", "-0.1"], ["--negative-threshold is -0.1"]),
    (["--positive-threshold", "0.3", "--negative-threshold", "0.4"], ["--negative-threshold 0.4 must be below"]),
    (["--iterations", "-1"], ["--iterations is -1", ">= 0"]),
])
def test_bad_selftrain_value(sim, old_run, capsys, extra, needles):
    before = snapshot(old_run)
    expect_error(capsys, selftrain_argv(sim, old_run, "--overwrite", *extra), *needles)
    assert snapshot(old_run) == before


@pytest.mark.parametrize("extra, needles", [
    (["--threshold", "2"], ["--threshold is 2", "between 0 and 1"]),
    (["--threshold", "-1"], ["--threshold is -1", "between 0 and 1"]),
    (["--threshold", "nan"], ["--threshold is nan"]),
    (["--box-size", "-10", "--format", "box"], ["--box-size is -10", "a whole number >= 1"]),
    (["--box-size", "0"], ["--box-size is 0"]),
    (["--tile-size", "0"], ["--tile-size is 0", ">= 32"]),
    (["--batch-size", "0"], ["--batch-size is 0"]),
    (["--min-distance", "nan"], ["--min-distance is nan"]),
    (["--min-area", "-1"], ["--min-area is -1"]),
    (["--downsample", "inf"], ["--downsample is inf"]),
    (["--seed", "-5"], ["--seed is -5"]),
])
def test_bad_pick_value_before_any_picking(sim, trained, picked, capsys, tmp_path, extra, needles):
    """Checked first: the output folder is not even created, an earlier one is left as it was."""
    fresh = tmp_path / "fresh"
    expect_error(capsys, pick_argv(trained, fresh, sim / "micrographs", *extra), *needles)
    assert not fresh.exists()
    out = earlier_picks(picked, tmp_path)
    before = snapshot(out)
    expect_error(capsys, pick_argv(trained, out, sim / "micrographs", "--overwrite", *extra), *needles)
    assert snapshot(out) == before


@pytest.mark.parametrize("extra, needles", [(["--threshold", "2"], ["--threshold is 2"]),
                                            (["--batch-size", "0"], ["--batch-size is 0"])])
def test_bad_predict_value(sim, trained, capsys, tmp_path, extra, needles):
    out = tmp_path / "maps"
    expect_error(capsys, ["predict", "--model", str(trained / "model.pt"), "--out", str(out),
                          str(sim / "micrographs"), "--device", "cpu", *extra], *needles)
    assert not out.exists()


@pytest.mark.parametrize("extra, needles", [
    (["--radius", "nan"], ["--radius is nan", "match radius"]), (["--radius", "-1"], ["--radius is -1"]),
    (["--threshold", "inf"], ["--threshold is inf", "finite"]),
])
def test_bad_evaluate_value(sim, picked, capsys, tmp_path, extra, needles):
    argv = ["evaluate", "--picks", str(picked / "picks.star"), "--truth", str(sim / "labels_true.star"),
            "--out", str(tmp_path / "eval"), *extra]
    expect_error(capsys, argv, *needles)
    assert not (tmp_path / "eval").exists()


def test_bad_command_line_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["pick", "--model", "m.pt", "--out", "o", "mics", "--tile-size", "big"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert e.value.code == 2 and len(err) == 1, err
    assert err[0].startswith("cryopick pick: error: argument --tile-size: invalid int value: 'big'") and "--help" in err[0]


def test_training_without_validation_micrographs_warns(sim, capsys, tmp_path):
    capsys.readouterr()
    assert main(train_argv(sim / "micrographs", sim / "labels.star", tmp_path / "run", "--val-fraction", "0")) == 0
    out = capsys.readouterr().out
    warning = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "no labelled validation micrographs" in warning[0], out
    assert "--val-images" in warning[0] and "threshold 0.5" in warning[0] and "--val-fraction 0" in warning[0]
    assert "done: no validation F1" in out and "nan" not in out.splitlines()[-1]


# --------------------------------------------------------------------------- disk full, permission denied


def failing_writes(monkeypatch, names: set[str] | None = None, error: int | None = None) -> None:
    """Writes of files named ``names`` (all when None) fail: on /dev/full (ENOSPC from the kernel,
    mid-write), or with ``error`` when the temporary file is created."""
    import cryopick.io.atomic as atomic

    real_create, real_open = atomic._create_temp, os.open

    def create_temp(target: Path):
        if names is not None and target.name not in names:
            return real_create(target)
        if error is not None:  # the system refuses the temporary file: os.open fails as it would
            def refuse(path, *args, **kwargs):
                if Path(path).parent == target.parent and Path(path).name.startswith(f".{target.stem}."):
                    raise OSError(error, os.strerror(error), str(path))
                return real_open(path, *args, **kwargs)

            monkeypatch.setattr(os, "open", refuse)
            try:
                return real_create(target)
            finally:
                monkeypatch.setattr(os, "open", real_open)
        tmp = atomic._temp_name(target)
        os.symlink("/dev/full", tmp)  # writers open the link and write to /dev/full; removing it removes the link
        return tmp, os.open(tmp, os.O_WRONLY)

    monkeypatch.setattr(atomic, "_create_temp", create_temp)


needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")


@needs_dev_full
def test_disk_full_while_saving_a_checkpoint(sim, capsys, tmp_path, monkeypatch):
    """torch.save reports a full disk as RuntimeError '... unexpected pos': still one line naming model.pt."""
    failing_writes(monkeypatch, {"model.pt"})
    out = tmp_path / "run"
    line = expect_error(capsys, train_argv(sim / "micrographs", sim / "labels.star", out, "--val-fraction", "0",
                                           "--overwrite"),  # the rerun (--debug) replaces what the first one left
                        str(out / "model.pt"), "No space left on device", "free space", rc=3)
    assert "RuntimeError" not in line and "unexpected pos" not in line
    assert not list(out.glob(".*.tmp*")) and not (out / "model.pt").exists()


@needs_dev_full
def test_disk_full_keeps_the_run_being_resumed(sim, old_run, capsys, monkeypatch):
    failing_writes(monkeypatch)
    expect_train_error(capsys, old_run, sim / "micrographs", sim / "labels.star", "config.yaml",
                       "No space left on device", "free space", extra=["--resume", "--epochs", "2"], rc=3)


@needs_dev_full
def test_disk_full_while_picking_keeps_the_earlier_picks(sim, trained, picked, capsys, tmp_path, monkeypatch):
    """The message names picks.star where the user looks for it, not in the staging folder it was written to."""
    failing_writes(monkeypatch, {"picks.star"})
    out = earlier_picks(picked, tmp_path)
    before = snapshot(out)
    line = expect_error(capsys, pick_argv(trained, out, sim / "micrographs", "--overwrite"), str(out / "picks.star"),
                        "No space left on device", "free space", rc=3)
    assert "cryopick-new" not in line
    assert snapshot(out) == before and hidden_siblings(out) == []


def test_permission_denied_names_the_file(sim, trained, picked, capsys, tmp_path, monkeypatch):
    import errno

    failing_writes(monkeypatch, {"pick_summary.json"}, error=errno.EACCES)
    out = earlier_picks(picked, tmp_path)
    before = snapshot(out)
    expect_error(capsys, pick_argv(trained, out, sim / "micrographs", "--overwrite"), "pick_summary.json",
                 "Permission denied", "change the folder's permissions", rc=3)
    assert snapshot(out) == before


def test_any_os_error_is_one_line(monkeypatch, capsys):
    import errno

    import cryopick.commands.evaluate as cmd

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/eval/pr_curve.png")

    monkeypatch.setattr(cmd, "main", full)
    line = expect_error(capsys, ["evaluate", "--picks", "a", "--truth", "b"], "/data/eval/pr_curve.png",
                        "No space left on device", "free space", rc=3)
    assert "internal error" not in line


# --------------------------------------------------------------------------- cryoSPARC names

CRYOSPARC_UID = "012345678901234567890"


def cryosparc_star(sim: Path, path: Path, true: bool = False) -> Path:
    """The labels as cryoSPARC exports them: an optics block, then particles whose micrograph
    names carry the job folder and cryoSPARC's UID prefix."""
    from cryopick.io import read_labels

    rows = [f"000{i:03d}@J12/extract/{CRYOSPARC_UID}_{stem}_particles.mrcs\tJ12/imported/{CRYOSPARC_UID}_{stem}.mrc\t"
            f"{x:.6f}\t{y:.6f}\t1"
            for stem, p in read_labels(sim / ("labels_true.star" if true else "labels.star")).items()
            for i, (x, y) in enumerate(p.xy)]
    path.write_text("\n# version 30001\n\ndata_optics\n\nloop_\n_rlnOpticsGroupName #1\n_rlnOpticsGroup #2\n"
                    "_rlnMicrographPixelSize #3\n_rlnVoltage #4\n_rlnSphericalAberration #5\n_rlnAmplitudeContrast #6\n"
                    "opticsGroup1\t1\t1.500000\t300.000000\t2.700000\t0.100000\n\n\n# version 30001\n\n"
                    "data_particles\n\nloop_\n_rlnImageName #1\n_rlnMicrographName #2\n_rlnCoordinateX #3\n"
                    "_rlnCoordinateY #4\n_rlnOpticsGroup #5\n" + "\n".join(rows) + "\n")
    return path


def test_cryosparc_export_pairs_with_micrographs_by_stem(sim, picked, capsys, tmp_path):
    labels = cryosparc_star(sim, tmp_path / "cryosparc_export.star")
    capsys.readouterr()
    assert main(train_argv(sim / "micrographs", labels, tmp_path / "run")) == 0
    out = capsys.readouterr().out
    assert "3 labelled" in out or ("2 labelled" in out and "1 validation" in out), out
    assert "not among the inputs" not in out and "have no labels" not in out
    truth = cryosparc_star(sim, tmp_path / "cryosparc_truth.star", true=True)
    assert main(evaluate_argv(picked / "picks.star", truth, "--out", str(tmp_path / "eval"))) == 0
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["scored_micrographs"] == ["sim_0000", "sim_0001", "sim_0002"] and m["unpicked_micrographs"] == []


def test_micrographs_that_carry_the_uid_keep_pairing(sim, capsys, tmp_path):
    """cryoSPARC's own micrograph files carry the UID too: exact names pair, and so do plain ones."""
    d = tmp_path / "J12_imported"
    d.mkdir()
    for f in (sim / "micrographs").iterdir():
        shutil.copy(f, d / f"{CRYOSPARC_UID}_{f.name}")
    labels = cryosparc_star(sim, tmp_path / "exact.star")
    for name, star in [("exact", labels), ("plain", sim / "labels.star")]:
        capsys.readouterr()
        assert main(["prepare", "--images", str(d), "--labels", str(star), "--radius", "6", "--out",
                     str(tmp_path / name)]) == 0, name
        assert "wrote 3 micrographs" in capsys.readouterr().out, name


def test_only_a_cryosparc_uid_prefix_is_dropped():
    from cryopick.io import Particles
    from cryopick.io.names import align_names, strip_uid

    assert strip_uid(f"{CRYOSPARC_UID}_mic") == "mic" and strip_uid("012345678901234_a_b") == "a_b"
    for name in ["20230512_120000_mic", "0001_mic", "12345678901234_mic", CRYOSPARC_UID, f"{CRYOSPARC_UID}_"]:
        assert strip_uid(name) == name  # dates, counters, a name that is only digits: unchanged
    labels = {"0001": Particles.empty(), f"{CRYOSPARC_UID}_0002": Particles.empty(), "0003": Particles.empty()}
    assert align_names(labels, ["0001", "0002", f"{CRYOSPARC_UID}_0003", "0003"]) == {f"{CRYOSPARC_UID}_0002": "0002"}
    assert list(labels) == ["0001", "0002", "0003"]  # order kept; the exact name 0003 wins


def test_two_cryosparc_imports_of_one_micrograph_are_an_error(sim, old_run, capsys, tmp_path):
    text = cryosparc_star(sim, tmp_path / "a.star").read_text()
    rows = [line for line in text.splitlines() if "sim_0000.mrc" in line]
    twice = text + "\n".join(r.replace(CRYOSPARC_UID, "999999999999999999999") for r in rows) + "\n"
    (tmp_path / "twice.star").write_text(twice)
    expect_train_error(capsys, old_run, sim / "micrographs", tmp_path / "twice.star", "twice.star",
                       f"{CRYOSPARC_UID}_sim_0000", "999999999999999999999_sim_0000", "name micrograph 'sim_0000'")
