"""What `cryopick pick` writes: the picks at the threshold (candidates only when asked, and marked),
the RELION AutoPick layout read back with `starfile`, per-micrograph folders, .box edges, progress."""

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile

from cryopick.cli import main
from cryopick.io import read_labels, read_micrograph
from cryopick.pickfiles import box_fits
from cryopick.progress import Progress
from cryopick.simulate import SimulationConfig, save_simulation, simulate

TINY = ["--base-features", "4", "--patch-size", "32", "--patches-per-epoch", "4", "--batch-size", "4",
        "--epochs", "1", "--device", "cpu"]
RELION_COLUMNS = ["rlnCoordinateX", "rlnCoordinateY", "rlnClassNumber", "rlnAutopickFigureOfMerit", "rlnAnglePsi"]


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A folder with micrographs (mics/) and a tiny trained model (run/), used as the working directory."""
    root = tmp_path_factory.mktemp("pick_project")
    save_simulation(simulate(SimulationConfig(n=2, size=64, diameter=12, snr=0.5, seed=3)), root / "sim")
    (root / "mics").symlink_to(root / "sim" / "micrographs")
    assert main(["train", "--images", str(root / "mics"), "--labels", str(root / "sim" / "labels.star"),
                 "--radius", "6", "--out", str(root / "run"), *TINY, "--ensemble", "1"]) == 0
    return root


def _pick(project, out, *extra):
    return main(["pick", "--model", "run/best_model.pt", "--out", out, "mics", "--device", "cpu", *extra])


def test_picks_are_at_the_threshold_and_candidates_are_marked(project, monkeypatch):
    monkeypatch.chdir(project)
    assert _pick(project, "at_t", "--threshold", "0.3") == 0
    assert _pick(project, "cand", "--all-candidates") == 0
    s = json.loads(Path("at_t/pick_summary.json").read_text())
    c = json.loads(Path("cand/pick_summary.json").read_text())
    assert s["all_candidates"] is False and s["threshold"] == pytest.approx(0.3) and s["threshold_source"] == "--threshold"
    assert c["all_candidates"] is True and "every candidate" in c["threshold_source"]
    assert c["n_picks"] >= s["n_picks"]
    picks = read_labels(Path("at_t/picks.star"))
    assert all((p.scores >= 0.3).all() for p in picks.values() if len(p))
    assert not Path("at_t/picks.star").read_text().startswith("# cryopick pick --all-candidates")
    assert Path("cand/picks.star").read_text().startswith("# cryopick pick --all-candidates: EVERY candidate")
    assert sum(len(p) for p in read_labels(Path("cand/picks.star")).values()) == c["n_picks"]


def test_relion_layout_reads_back_with_starfile(project, monkeypatch):
    monkeypatch.chdir(project)
    assert _pick(project, "AutoPick/job001", "--format", "relion", "--format", "star", "--threshold", "0.05",
                 "--angpix", "1.5") == 0
    folder = Path("AutoPick/job001/relion")
    index = starfile.read(folder / "autopick.star", always_dict=True)
    assert list(index) == ["coordinate_files"]
    rows = index["coordinate_files"]
    assert list(rows.columns) == ["rlnMicrographName", "rlnMicrographCoordinates"]
    mics = sorted(str(p) for p in Path("mics").iterdir())
    assert sorted(rows["rlnMicrographName"]) == mics  # the user's paths, relative to the working folder
    summary = json.loads(Path("AutoPick/job001/pick_summary.json").read_text())
    total = 0
    for mic, coords in zip(rows["rlnMicrographName"], rows["rlnMicrographCoordinates"]):
        stem = Path(mic).stem
        assert coords == f"AutoPick/job001/relion/{stem}_autopick.star" and Path(coords).is_file()
        text = Path(coords).read_text()
        assert "# version 30001" in text and "data_optics" not in text
        block = starfile.read(coords, always_dict=True)[""] if summary["per_micrograph"][stem] else None
        if block is not None:
            assert list(block.columns) == RELION_COLUMNS
            assert (block["rlnClassNumber"] == 0).all() and (block["rlnAnglePsi"] == -999).all()
            assert (block["rlnAutopickFigureOfMerit"] >= 0.05).all()
            h, w = read_micrograph(mic).image.shape
            assert block["rlnCoordinateX"].between(-0.5, w - 0.5).all()
            total += len(block)
    assert total == summary["n_picks"]
    one = starfile.read("AutoPick/job001/picks.star", always_dict=True)
    assert list(one) == ["optics", "particles"]
    assert one["optics"]["rlnMicrographPixelSize"].tolist() == [1.5]
    assert len(one["particles"]) == total and set(one["particles"]["rlnMicrographName"]) <= set(mics)
    assert (one["particles"]["rlnOpticsGroup"] == 1).all()
    again = read_labels(Path("AutoPick/job001/picks.star"))  # cryopick's own reader takes the optics layout
    assert sum(len(p) for p in again.values()) == total


def test_per_micrograph_folders_are_named_by_format(project, monkeypatch):
    monkeypatch.chdir(project)
    assert _pick(project, "per", "--per-micrograph", "--format", "star", "--format", "cryosparc", "--format", "topaz",
                 "--threshold", "0.05") == 0
    assert not Path("per/picks.star").exists()
    for folder, ending in [("star", ".star"), ("cryosparc", "_cryosparc.star"), ("topaz", ".txt")]:
        names = sorted(p.name for p in Path("per", folder).iterdir())
        assert names == sorted(f"{p.stem}{ending}" for p in Path("mics").iterdir()), folder
    for f in Path("per/star").iterdir():
        starfile.read(f, always_dict=True)


def test_box_edge_exclusion(project, monkeypatch):
    assert box_fits(np.array([[10, 10], [32, 32], [60, 5]]), (64, 64), 20).tolist() == [True, True, False]
    assert box_fits(np.array([[1, 1]]), None, 20).tolist() == [True]
    monkeypatch.chdir(project)
    args = ["--format", "box", "--box-size", "40", "--threshold", "0.05"]
    assert _pick(project, "edge", *args) == 0
    assert _pick(project, "keep", *args, "--no-exclude-edge") == 0
    kept = json.loads(Path("keep/pick_summary.json").read_text())
    edge = json.loads(Path("edge/pick_summary.json").read_text())
    n_keep = sum(len(p.read_text().splitlines()) for p in Path("keep/box").iterdir())
    n_edge = sum(len(p.read_text().splitlines()) for p in Path("edge/box").iterdir())
    assert n_keep == kept["n_picks"] and n_edge == n_keep - edge["box_outside_edge"]
    for f in Path("edge/box").iterdir():
        for line in f.read_text().splitlines():
            x, y, w, h = map(int, line.split())
            assert x >= 0 and y >= 0 and x + w <= 64 and y + h <= 64


def test_progress_lines_without_a_terminal(monkeypatch):
    import cryopick.progress as progress

    clock = iter(np.arange(0, 1000, 20.0))
    monkeypatch.setattr(progress.time, "monotonic", lambda: float(next(clock)))
    stream = io.StringIO()
    bar = Progress(4, "pick", every=15, stream=stream)
    bar.start("mic_0")
    bar.tile(3, 10)
    for _ in range(4):
        bar.update()
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "pick: micrograph 1/4 (mic_0): tile 3/10"
    assert any("micrographs (" in line and "left" in line for line in lines)
    assert lines[-1].startswith("pick: 4/4 micrographs (100 %)")


def test_tile_progress_callback_of_predict_probability():
    import torch

    from cryopick.inference import predict_probability

    calls = []
    model = torch.nn.Conv2d(1, 1, 1)
    a = predict_probability(model, np.zeros((100, 100), np.float32), tile=32, overlap=8, batch_size=4,
                            progress=lambda d, t: calls.append((d, t)))
    b = predict_probability(model, np.zeros((100, 100), np.float32), tile=32, overlap=8, batch_size=4)
    assert np.array_equal(a, b)
    assert calls[-1][0] == calls[-1][1] and len(calls) == -(-calls[-1][1] // 4)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_relion_writer_round_trip(tmp_path):
    from cryopick.io import Particles
    from cryopick.io.relion import write_relion_layout

    labels = {"a": Particles(np.array([[1.25, 2.5], [30.0, 40.125]]), np.array([0.9, 0.7])), "b": Particles.empty()}
    files = write_relion_layout(labels, tmp_path / "r", {"a": "Movies/a.mrc", "b": "Movies/b.mrc"}, "Job/x")
    assert [f.name for f in files] == ["a_autopick.star", "b_autopick.star", "autopick.star"]
    a = starfile.read(files[0], always_dict=True)[""]
    assert np.allclose(a[["rlnCoordinateX", "rlnCoordinateY"]].to_numpy(), labels["a"].xy)
    assert np.allclose(a["rlnAutopickFigureOfMerit"], [0.9, 0.7])
    b = starfile.read(files[1], always_dict=True)[""]
    assert len(b) == 0 and list(b.columns) == RELION_COLUMNS
    index = starfile.read(files[2], always_dict=True)["coordinate_files"]
    assert index.to_dict("list") == {"rlnMicrographName": ["Movies/a.mrc", "Movies/b.mrc"],
                                     "rlnMicrographCoordinates": ["Job/x/a_autopick.star", "Job/x/b_autopick.star"]}
    assert isinstance(index, pd.DataFrame)
