"""Checks of the benchmark peers (not collected by the cryopick test suite).

    /work/main/.venv/bin/python -m pytest benchmarks/peers/test_peers.py -q

The Topaz end-to-end test needs the Topaz venv (``setup_topaz.sh``) and takes
~1-2 minutes; it runs only with ``CRYOPICK_TEST_TOPAZ=1``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import dog_picker  # noqa: E402
import run_topaz  # noqa: E402


def _blobs(shape=(300, 400), centres=((100.3, 60.0), (250.0, 200.7), (301.0, 151.0), (50.0, 250.0)),
           sigma=8.0, sign=-1.0, noise=0.05, seed=0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = np.zeros(shape, np.float32)
    for x, y in centres:
        img += sign * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    img += noise * np.random.default_rng(seed).standard_normal(shape)
    return img, np.array(centres)


@pytest.mark.parametrize("f", [1, 2, 3, 4, None])
def test_dog_finds_dark_blobs_in_original_pixels(f):
    img, truth = _blobs()
    xy, sc = dog_picker.dog_pick(img, 12, f, "dark", threshold=5)
    assert len(xy) == len(truth)
    assert np.all(np.diff(sc) <= 0)
    d = np.linalg.norm(xy[:, None] - truth[None], axis=2).min(axis=0)
    assert d.max() < 0.5


def test_dog_polarity():
    img, truth = _blobs(sign=+1.0)
    assert dog_picker.estimate_polarity(img, 12) == "bright"
    assert dog_picker.estimate_polarity(-img, 12) == "dark"
    xy, _ = dog_picker.dog_pick(img, 12, 2, "auto", threshold=5)
    assert len(xy) == len(truth)
    xy, _ = dog_picker.dog_pick(img, 12, 2, "dark", threshold=5)  # wrong polarity:
    d = np.linalg.norm(xy[:, None] - truth[None], axis=2)       # only DoG side lobes
    assert d.min() > 6


def test_dog_min_distance_border_threshold():
    img, _ = _blobs()
    xy, sc = dog_picker.dog_pick(img, 12, 2, "dark")  # every local maximum
    assert len(xy) > 4
    d = np.linalg.norm(xy[:, None] - xy[None], axis=2) + np.eye(len(xy)) * 1e9
    assert d.min() >= 12 - 2  # min_distance = radius (downsampled grid)
    h, w = img.shape
    assert np.all((xy >= 12 - 1) & (xy <= np.array([w, h]) - 12))
    xy2, sc2 = dog_picker.dog_pick(img, 12, 2, "dark", threshold=float(np.median(sc)))
    assert 0 < len(xy2) < len(xy) and np.all(sc2 > np.median(sc))
    xy3, _ = dog_picker.dog_pick(img, 12, 2, "dark", max_picks=3)
    assert len(xy3) == 3


def test_dog_cli(tmp_path):
    from PIL import Image

    img, truth = _blobs()
    u8 = ((img - img.min()) / (img.max() - img.min()) * 255).astype(np.uint8)
    Image.fromarray(u8).save(tmp_path / "a.png")
    np.save(tmp_path / "b.npy", img)
    out = tmp_path / "picks.tsv"
    rc = dog_picker.main([str(tmp_path / "a.png"), str(tmp_path / "b.npy"), "--radius", "12",
                          "--threshold", "5", "--polarity", "auto", "--out", str(out),
                          "--timing", str(tmp_path / "t.json")])
    assert rc == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "image_name\tx_coord\ty_coord\tscore"
    assert {ln.split("\t")[0] for ln in lines[1:]} == {"a", "b"}
    assert len(lines) == 1 + 2 * len(truth)
    info = json.loads((tmp_path / "t.json").read_text())
    assert info["polarity"] == "dark" and info["downsample"] == 1


def test_topaz_helpers(tmp_path):
    assert run_topaz.disk_pixels(3) == 29 and run_topaz.disk_pixels(4) == 49
    (tmp_path / "l.json").write_text(json.dumps({"m1.png": [[1, 2], [3, 4]], "m2.mrc": []}))
    lab = run_topaz.read_labels(tmp_path / "l.json")
    assert lab["m1"].shape == (2, 2) and len(lab["m2"]) == 0
    star = tmp_path / "l.star"
    star.write_text("data_\n\nloop_\n_rlnMicrographName #1\n_rlnCoordinateX #2\n"
                    "_rlnCoordinateY #3\nm1.mrc\t10.5\t20.0\nm1.mrc\t30\t40\nm3.mrc\t1\t2\n")
    lab = run_topaz.read_labels(star)
    assert np.allclose(lab["m1"], [[10.5, 20.0], [30, 40]]) and lab["m3"].shape == (1, 2)
    picks = {"m1": (np.array([[1.0, 2.0]]), np.array([0.5]))}
    run_topaz.write_picks_tsv(picks, tmp_path / "p.tsv")
    assert (tmp_path / "p.tsv").read_text().splitlines()[1] == "m1\t1.00\t2.00\t0.5"


def _write_mrc(path, a):
    import mrcfile

    with mrcfile.new(str(path), overwrite=True) as m:
        m.set_data(np.asarray(a, np.float32))


def test_topaz_mrc_shape(tmp_path):
    _write_mrc(tmp_path / "x.mrc", np.zeros((30, 50)))
    assert run_topaz.mrc_shape(tmp_path / "x.mrc") == (30, 50)


@pytest.mark.skipif(os.environ.get("CRYOPICK_TEST_TOPAZ") != "1",
                    reason="slow; set CRYOPICK_TEST_TOPAZ=1 (needs setup_topaz.sh)")
def test_topaz_end_to_end(tmp_path):
    rng = np.random.default_rng(1)
    mics, labels = [], {}
    for i in range(3):
        centres = rng.uniform(40, 216, size=(12, 2))
        img, _ = _blobs((256, 256), centres, sigma=5.0, noise=0.3, seed=i)
        p = tmp_path / f"m{i}.mrc"
        _write_mrc(p, img)
        mics.append(p)
        labels[p.stem] = centres[:6]
    settings = run_topaz.TopazSettings(num_epochs=1, epoch_size=5, minibatch_size=64, seed=0)
    res = run_topaz.run_topaz(mics[:2], labels, mics[2:], tmp_path / "work", 8, 2, 12, settings)
    xy, sc = res["picks"]["m2"]
    assert xy.shape[1] == 2 and len(xy) == len(sc) > 0
    assert res["train_seconds"] > 0 and res["peak_rss_mb"] > 0


def test_few_label_set_variants(tmp_path):
    """-mics<N> keeps N training micrographs, -labelled<N> keeps all but labels only the same N."""
    import datasets
    from cryopick.io import Particles, find_micrographs, read_labels, write_labels
    from cryopick.io.micrographs import write_mrc

    (tmp_path / "mics").mkdir()
    labels = {}
    for i in range(3):
        write_mrc(tmp_path / "mics" / f"m{i}.mrc", np.zeros((64, 64), np.float32))
        labels[f"m{i}"] = Particles(np.full((i + 1, 2), 32.0), None, 10.0)
    write_labels(labels, tmp_path / "train.star", "star")
    d = datasets._count({f"{s}_mics": tmp_path / "mics" for s in datasets.SPLITS}
                        | {f"{s}_labels": tmp_path / "train.star" for s in datasets.SPLITS})
    few = datasets.few_micrographs(d, tmp_path / "few", 2)
    kept = sorted(p.stem for p in find_micrographs([str(few["train_mics"])]))
    assert len(kept) == 2 and sorted(read_labels(few["train_labels"])) == kept
    assert few["per_mic"] == sum(len(labels[k].xy) for k in kept) / 2
    lab = datasets.labels_on_few(d, tmp_path / "lab", 2)
    assert lab["train_mics"] == d["train_mics"] and lab["sparse"] is True
    assert sorted(read_labels(lab["train_labels"])) == kept and lab["per_mic"] == few["per_mic"]
    with pytest.raises(SystemExit):
        datasets.few_micrographs(d, tmp_path / "bad", 4)


def test_agreement_splits_truth_and_false_picks_by_who_found_them():
    from agreement import split_truth

    truth = np.array([[10.0, 10.0], [50.0, 10.0], [90.0, 10.0], [130.0, 10.0]])
    a = np.array([[11.0, 10.0], [51.0, 11.0], [200.0, 200.0], [300.0, 10.0]])  # hits 0, 1; two false
    b = np.array([[10.0, 12.0], [89.0, 10.0], [202.0, 199.0]])  # hits 0, 2; one false, shared with a's
    p = split_truth(truth, a, b, radius=5.0)
    assert p["both"].tolist() == [True, False, False, False]
    assert p["a_only"].tolist() == [False, True, False, False]
    assert p["b_only"].tolist() == [False, False, True, False]
    assert p["neither"].tolist() == [False, False, False, True]
    assert p["false_a"].tolist() == [False, False, True, True]
    assert p["false_b"].tolist() == [False, False, True]
    assert p["false_shared_a"].tolist() == [False, False, True, False]


def test_block_counts_put_each_outcome_in_its_block():
    import significance

    truth = np.array([[5.0, 5.0], [15.0, 5.0], [25.0, 25.0]])
    picks = np.array([[6.0, 5.0], [25.0, 5.0], [26.0, 24.0]])  # hit, false (10 px off), hit
    c = significance.block_counts(truth, picks, radius=3.0, side=10.0)
    assert {k: v.tolist() for k, v in c.items()} == {(0, 0): [1, 0, 0], (1, 0): [0, 0, 1], (2, 0): [0, 1, 0],
                                                     (2, 2): [1, 0, 0]}
    assert significance.f1(np.array([2, 1, 1])) == pytest.approx(4 / 6)


def test_paired_bootstrap_of_equal_and_of_better_pickers():
    import significance

    rng = np.random.default_rng(1)
    truth = {f"m{i}": rng.uniform(0, 400, size=(40, 2)) for i in range(3)}
    same = significance.compare(truth, truth, truth, radius=2.0, side=50.0, n=300)
    assert same["delta"] == 0.0 and same["delta_ci95"] == [0.0, 0.0] and same["F1_a"] == 1.0
    half = {k: v[::2] for k, v in truth.items()}  # finds every other particle: F1 = 2/3
    s = significance.compare(truth, truth, half, radius=2.0, side=50.0, n=300)
    assert s["F1_b"] == pytest.approx(2 * 60 / (2 * 60 + 60))
    assert s["delta_ci95"][0] > 0.2 and s["p_delta_ge_0.02"] == 1.0 and s["n_truth"] == 120
