"""The run-layout module (names, readers, one summary format), the named units and the calibration result."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cryopick import runlayout as layout
from cryopick.data import Preprocessing, radius_from_diameters, resolve_radius
from cryopick.io import Particles
from cryopick.metrics import ParticleMetrics
from cryopick.pipeline import RUN_FILES, Calibration


def write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def test_downsampled_radius_names_the_unit():
    prep = Preprocessing(downsample=4.0, normalize="robust", radius=30.0, mask_radius_scale=0.6)
    assert prep.downsampled_radius == 30.0 / 4.0
    assert prep.mask_radius == pytest.approx(prep.downsampled_radius * 0.6)


def test_radius_from_diameters_is_half_the_median():
    labels = {"a": Particles(np.zeros((1, 2)), None, 20.0), "b": Particles(np.zeros((1, 2)), None, 30.0),
              "c": Particles(np.zeros((1, 2)), None, None)}
    assert radius_from_diameters(labels) == 12.5
    assert radius_from_diameters({"c": labels["c"]}) is None and radius_from_diameters(None) is None
    assert resolve_radius(None, labels, "x") == 12.5 and resolve_radius(7, labels, "x") == 7.0


def test_metrics_json_shapes_are_told_apart(tmp_path):
    train = write(tmp_path / "t" / layout.METRICS, [{"epoch": 1, "f1": 0.5}, "junk"])
    old = write(tmp_path / "o" / layout.METRICS, {"history": [{"epoch": 2}]})
    ev = write(tmp_path / "e" / layout.METRICS, {"radius": 5, "overall": {"f1": 0.7}})
    assert [layout.metrics_kind(json.loads(p.read_text())) for p in (train, old, ev)] == \
        ["training", "training", "evaluation"]
    assert layout.metrics_kind({"other": 1}) is None
    assert layout.read_history(train) == [{"epoch": 1, "f1": 0.5}]
    assert layout.read_history(old) == [{"epoch": 2}] and layout.read_history(ev) == []
    assert layout.read_evaluation(ev.parent)["overall"]["f1"] == 0.7
    assert layout.read_evaluation(train.parent) is None and layout.read_evaluation(tmp_path / "none") is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / layout.METRICS).write_text("{not json")
    with pytest.raises(ValueError, match="metrics.json: not valid JSON"):
        layout.read_history(tmp_path / "bad" / layout.METRICS)


def test_one_summary_format_for_train_and_selftrain(tmp_path):
    for kind, extra in [("train", {"best_epoch": 3}), ("selftrain", {"shipped": "iteration 1"})]:
        path = layout.write_summary(tmp_path / kind, {**layout.summary_header(kind, 0.4, {"f1": 0.8, "ap": 0.7}),
                                                      **extra})
        assert path.name == layout.SUMMARIES[kind]
        s = layout.read_summary(tmp_path / kind, kind)
        assert (s.kind, s.pick_threshold, s.particles) == (kind, 0.4, {"f1": 0.8, "ap": 0.7})
        assert s.model == tmp_path / kind / layout.MODEL_OF[kind] and s.data["summary_version"] == layout.SUMMARY_VERSION
    assert layout.read_summary(tmp_path / "train", "selftrain") is None


def test_summaries_of_earlier_versions_still_read(tmp_path):
    """As written before the shared fields: no kind, model or validation_particles."""
    write(tmp_path / layout.TRAIN_SUMMARY, {"best_f1": 0.2, "best_epoch": 2, "pick_threshold": 0.5, "final": {}})
    write(tmp_path / layout.SELFTRAIN_SUMMARY, {"iterations": [], "pick_threshold": 0.3, "shipped": "baseline",
                                                "final_particles": {"f1": 0.6, "ap": 0.5}})
    t, s = layout.read_summary(tmp_path, "train"), layout.read_summary(tmp_path, "selftrain")
    assert (t.model.name, t.pick_threshold, t.particles) == ("best_model.pt", 0.5, None)
    assert (s.model.name, s.pick_threshold, s.particles) == ("final_model.pt", 0.3, {"f1": 0.6, "ap": 0.5})
    write(tmp_path / layout.TRAIN_SUMMARY, [1, 2])
    with pytest.raises(ValueError, match="train_summary.json: not a JSON object"):
        layout.read_summary(tmp_path, "train")


def test_names_of_a_training_run():
    assert RUN_FILES == ["model.pt", "best_model.pt", "metrics.json", "config.yaml", "train_summary.json"]
    assert layout.iteration_model(2) == "model_iteration_2.pt" and layout.iteration_dir(2) == "iteration_2"


def test_calibration_scores_are_what_selection_reads():
    m = ParticleMetrics(precision=0.5, recall=0.5, f1=0.5, ap=float("nan"), n_picks=2, n_truth=2, n_matched=1,
                        mean_error=1.0, threshold=None, best_f1=0.75)
    c = Calibration(0.4, m)
    assert c.scores == {"f1": 0.75, "ap": 0.0}  # NaN AP counts as 0, as the stored calibration did
    assert not math.isnan(c.scores["ap"])
