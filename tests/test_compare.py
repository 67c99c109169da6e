"""`cryopick compare`: the fairness check, --vary parsing, aggregation, and a tiny end-to-end run."""

import copy
import json

import pytest

from cryopick.cli import main
from cryopick.compare import (
    aggregate_runs,
    check_only_differs,
    curve_rows,
    differences,
    parse_seeds,
    parse_value,
    parse_vary,
    render_markdown,
    resolve_field,
    variant_configs,
)
from cryopick.config import RunConfig
from cryopick.errors import InputError
from cryopick.simulate import SimulationConfig, save_simulation, simulate

# ----------------------------------------------------------------------------- the fairness check


def test_check_only_differs_refuses_a_second_difference():
    a = RunConfig()
    b = copy.deepcopy(a)
    b.model.arch = "attention-unet"
    b.train.lr = 1e-4
    with pytest.raises(InputError, match=r"train\.lr"):
        check_only_differs({"unet": a, "attention-unet": b}, "arch")
    b.train.lr = a.train.lr
    check_only_differs({"unet": a, "attention-unet": b}, "arch")  # one difference: accepted
    check_only_differs({"unet": a, "attention-unet": b}, "model.arch")


def test_check_only_differs_selftrain_switch_and_minimum():
    a, b = RunConfig(), RunConfig()
    check_only_differs({"selftrain=off": a, "selftrain=on": b}, "selftrain")
    b.train.epochs = 3
    with pytest.raises(InputError, match=r"train\.epochs"):
        check_only_differs({"selftrain=off": a, "selftrain=on": b}, "selftrain")
    with pytest.raises(InputError, match="two variants"):
        check_only_differs({"only": a}, "arch")


def test_variant_configs_change_only_the_field():
    base = RunConfig()
    v = parse_vary("base_features=8,16")
    cfgs = variant_configs(base, v)
    assert [c.model.base_features for c in cfgs.values()] == [8, 16]
    assert base.model.base_features is None  # the base is not touched
    check_only_differs(cfgs, v.path)


# ----------------------------------------------------------------------------- --vary parsing


def test_parse_value_types():
    assert parse_value("augment", "off") is False
    assert parse_value("balanced-sampling", "yes") is True
    assert parse_value("train.amp", "TRUE") is True
    assert parse_value("epochs", "30") == 30
    assert parse_value("base_features", "auto") is None
    assert parse_value("lr", "1e-3") == pytest.approx(1e-3)
    assert parse_value("loss", "dice") == "dice"
    assert parse_value("arch", "attention-unet") == "attention-unet"
    assert parse_value("selftrain.dynamic_start", "0.99:0.01") == (0.99, 0.01)
    for field, text in [("augment", "maybe"), ("epochs", "3.5"), ("lr", "fast"), ("loss", "l2"), ("arch", "resnet")]:
        with pytest.raises(InputError):
            parse_value(field, text)


def test_field_names():
    assert resolve_field("arch") == "model.arch"
    assert resolve_field("balanced-sampling") == "train.balanced_sampling"
    assert resolve_field("batch_size") == "train.batch_size"  # the training one, not pick's
    assert resolve_field("pick.batch_size") == "pick.batch_size"
    assert resolve_field("radius") == "data.radius"
    assert resolve_field("selftrain") == "selftrain"
    with pytest.raises(InputError, match="unknown field"):
        resolve_field("colour")
    with pytest.raises(InputError, match="unknown field"):
        resolve_field("train.colour")


def test_parse_vary():
    v = parse_vary("arch=unet,attention-unet")
    assert (v.path, v.values, v.names) == ("model.arch", ["unet", "attention-unet"], ["unet", "attention-unet"])
    v = parse_vary("augment=on,no")
    assert v.values == [True, False] and v.names == ["augment=on", "augment=off"]
    v = parse_vary("selftrain=off,on")
    assert [v.mode(x) for x in v.values] == ["train", "selftrain"]
    assert parse_vary("selftrain.iterations=1,3").mode(1) == "selftrain"
    assert parse_vary("train.lr=1e-3,1e-4").names == ["lr=1e-3", "lr=1e-4"]
    for bad in ["arch", "arch=unet", "arch=unet,,attention-unet", "epochs=10,010", "nosuch=1,2", "=1,2"]:
        with pytest.raises(InputError):
            parse_vary(bad)
    assert parse_seeds("42,43") == [42, 43]
    for bad in ["42,x", "1,1"]:
        with pytest.raises(InputError):
            parse_seeds(bad)


# ----------------------------------------------------------------------------- tables and aggregation


def _history(f1s):
    return [{"epoch": e, "train_loss": 1.0 / e, "seconds": 2.0, "precision": f, "recall": f, "f1": f, "iou": f / 2,
             "auc": 0.9} for e, f in enumerate(f1s, start=1)]


def test_curve_rows_every_n_plus_best_and_last():
    h = _history([0.1 * (e % 7) / 7 for e in range(1, 26)])  # best at epoch 6 (and 13, 20: ties -> earliest)
    rows = curve_rows(h, 10)
    assert [r["epoch"] for r in rows] == [6, 10, 20, 25]
    assert [r["best"] for r in rows] == [True, False, False, False]
    assert [r["epoch"] for r in curve_rows(h[:5], 10)] == [1, 2, 3, 4, 5]  # shorter run: every evaluation


def _run(seed, f1s, params):
    from cryopick.compare import summarize_history

    h = _history(f1s)
    return {"seed": seed, "run_dir": f"x/seed_{seed}", "mode": "train", **summarize_history(h), "parameters": params,
            "inference_seconds": 0.01, "particle": {"best_checkpoint": {"best_f1": 0.5, "ap": 0.4},
                                                     "final_checkpoint": {"best_f1": 0.45, "ap": 0.35}},
            "history": h, "curve": curve_rows(h, 1)}


def test_several_seeds_mean_std_and_markdown():
    variants = {"unet": aggregate_runs([_run(1, [0.5, 0.6], 100), _run(2, [0.5, 0.7], 100)], 1),
                "attention-unet": aggregate_runs([_run(1, [0.6, 0.65], 110), _run(2, [0.55, 0.75], 110)], 1)}
    assert variants["unet"]["mean"]["best_f1"] == pytest.approx(0.65)
    assert variants["unet"]["std"]["best_f1"] == pytest.approx(0.0707107, rel=1e-5)
    assert len(variants["unet"]["runs"]) == 2 and variants["unet"]["best"]["epoch"] == 2
    diff, rel = differences(variants)
    assert diff["best_f1"]["attention-unet"] == pytest.approx(0.05)
    assert rel["parameters"]["attention-unet"] == pytest.approx(10.0)
    result = {"names": list(variants), "values": list(variants), "field": "model.arch", "seeds": [1, 2],
              "modes": {n: "train" for n in variants}, "device": "cpu",
              "split": {"seed": 1, "train": 4, "train_labelled": 4, "val": 1, "val_names": ["a"]},
              "config_check": {"ok": True, "differs_only_in": "model.arch", "derived_differences": {}},
              "configs": {n: dict(RunConfig().to_dict(), model={"arch": n, "base_features": 4}) for n in variants},
              "variants": variants, "differences": diff, "relative_differences": rel, "figures": {}}
    md = render_markdown(result)
    assert "65.00 ± 7.07%" in md and "not significant" in md and "+10.00%" in md
    assert "### attention-unet Performance Over Time (seed 2)" in md


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_compare_end_to_end(tmp_path):
    sim = save_simulation(simulate(SimulationConfig(n=3, size=96, diameter=16, seed=0)), tmp_path / "sim")
    out = tmp_path / "cmp"
    rc = main(["compare", "--images", str(sim / "micrographs"), "--labels", str(sim / "labels.star"),
               "--out", str(out), "--vary", "arch=unet,attention-unet", "--epochs", "1", "--base-features", "4",
               "--patch-size", "64", "--patches-per-epoch", "8", "--batch-size", "4", "--radius", "8",
               "--device", "cpu"])
    assert rc == 0
    result = json.loads((out / "comparison.json").read_text())
    assert result["field"] == "model.arch" and result["seeds"] == [42]
    assert result["config_check"] == {"ok": True, "differs_only_in": "model.arch", "differing_keys": ["model.arch"],
                                      "derived_differences": {}}
    v = result["variants"]
    assert set(v) == {"unet", "attention-unet"}
    assert v["attention-unet"]["parameters"] > v["unet"]["parameters"]
    for run in v.values():
        assert run["best_epoch"] == 1 and run["final"]["f1"] is not None and run["seconds_per_epoch"] > 0
        assert run["inference_seconds"] > 0 and run["particle"]["best_checkpoint"]["ap"] is not None
        assert run["history"] and run["curve"]
    assert result["differences"]["parameters"]["attention-unet"] > 0
    for name in v:
        assert (out / name / "best_model.pt").is_file() and (out / name / "metrics.json").is_file()
    cfgs = result["configs"]
    assert cfgs["unet"]["train"] == cfgs["attention-unet"]["train"]
    md = (out / "comparison.md").read_text()
    for text in ["| Metric | unet | attention-unet | Difference |", "**F1 Score**", "**Parameters**",
                 "**Time per epoch**", "**Inference time**", "**Particle F1**", "**Particle AP**",
                 "### unet Performance Over Time", "### attention-unet Performance Over Time",
                 "| Epoch | Precision | Recall | F1 Score | IoU |", "not significant", "🔀 **Varied**"]:
        assert text in md, text


def test_compare_refuses_bad_vary(tmp_path, capsys):
    rc = main(["compare", "--images", str(tmp_path), "--out", str(tmp_path / "o"), "--vary", "arch=unet,transformer"])
    assert rc != 0
    err = capsys.readouterr().err
    assert "transformer" in err and len(err.strip().splitlines()) == 1
