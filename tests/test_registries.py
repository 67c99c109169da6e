"""One registry per choice: losses, architectures, normalisations, schedules; the CLI and
``compare`` take their choices from them, and the device settings are resolved in one place."""

import argparse
import dataclasses

import numpy as np
import pytest
import torch

from cryopick import device, losses, preprocess, schedulers, train
from cryopick.cli import build_parser
from cryopick.commands._common import config_from_args
from cryopick.compare import CHOICES, UNMEASURED, parse_vary
from cryopick.config import PICK_SCORES, TrainConfig
from cryopick.errors import InputError
from cryopick.io.formats import FORMATS
from cryopick.models import ARCHITECTURES, build_model


def _choices(command: str) -> dict[str, tuple]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: tuple(a.choices) for a in sub.choices[command]._actions if a.choices}


@pytest.mark.parametrize("command", ["train", "selftrain", "compare"])
def test_cli_choices_come_from_the_registries(command):
    c = _choices(command)
    assert c["loss"] == losses.LOSS_CHOICES and c["arch"] == tuple(ARCHITECTURES)
    assert c["normalize"] == tuple(preprocess.NORMALIZATIONS) and c["scheduler"] == tuple(schedulers.SCHEDULERS)
    if command != "train":
        assert c["retrain_loss"] == losses.LOSS_CHOICES


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    return next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.mark.parametrize("command", sorted(_subparsers()))
def test_every_flag_has_help(command):
    missing = [a.option_strings[-1] for a in _subparsers()[command]._actions if a.option_strings and not a.help]
    assert not missing, f"cryopick {command}: flags without help text: {missing}"


def test_help_quotes_the_config_defaults():
    flags = {a.dest: a.help for a in _subparsers()["train"]._actions}
    cfg = TrainConfig()
    assert f"(default {cfg.lr:g})" in flags["lr"] and f"(default {cfg.weight_decay:g})" in flags["weight_decay"]
    assert f"(default {cfg.batch_size})" in flags["batch_size"]
    assert _choices("evaluate")["label_format"] == _choices("prepare")["label_format"] == tuple(FORMATS)


def test_loss_flags_reach_the_loss():
    args = build_parser().parse_args(["train", "--images", "m", "--labels", "l", "--out", "o", "--focal-alpha", "0.5",
                                      "--focal-gamma", "1", "--dice-weight", "0"])
    cfg = config_from_args(args).train
    assert (cfg.focal_alpha, cfg.focal_gamma, cfg.dice_weight) == (0.5, 1.0, 0.0)
    fn = losses.loss_from_config(dataclasses.replace(cfg, loss="combined"))
    logits, target = torch.tensor([[0.3, -1.2], [2.0, 0.1]]), torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    want = 0.7 * losses.focal_loss(logits, target, alpha=0.5, gamma=1.0)
    assert torch.allclose(fn(logits, target), want) and not torch.allclose(want, 0.7 * losses.focal_loss(logits, target))


def test_pick_score_choices():
    assert _choices("pick")["score"] == PICK_SCORES == CHOICES["pick.score"]


def test_compare_accepts_what_the_cli_accepts():
    assert CHOICES["train.loss"] == CHOICES["selftrain.retrain_loss"] == losses.LOSS_CHOICES
    assert CHOICES["model.arch"] == tuple(ARCHITECTURES)
    assert CHOICES["train.scheduler"] == tuple(schedulers.SCHEDULERS)
    assert CHOICES["data.normalize"] == tuple(preprocess.NORMALIZATIONS)
    v = parse_vary("loss=" + ",".join(losses.LOSSES))  # pu included (an older copy of the list lacked it)
    assert v.values == list(losses.LOSSES)
    assert parse_vary("pick.score=peak,mean").values == ["peak", "mean"]


def test_every_registered_loss_builds_and_takes_only_its_options():
    logits, target = torch.randn(1, 1, 6, 6), (torch.rand(1, 1, 6, 6) > 0.5).float()
    for name, spec in losses.REGISTRY.items():
        loss = losses.build_loss(name, prior=0.2)
        assert set(loss.options) == set(spec.options) and loss.fn is spec.fn
        assert torch.isfinite(loss(logits, target))
    assert losses.loss_from_config(TrainConfig(loss="pu", pu_prior=0.2)).options == {"prior": 0.2}
    with pytest.raises(InputError, match="choose one of bce, focal, dice, combined, pu"):
        losses.build_loss("l2")


def test_every_architecture_normalisation_and_schedule_is_usable():
    for name, a in ARCHITECTURES.items():
        m = build_model(name, 4)
        assert isinstance(m, a.cls) and m.architecture()["arch"] == name
    img = np.random.default_rng(0).normal(5, 2, (32, 32)).astype(np.float32)
    for name in preprocess.NORMALIZATIONS:
        assert preprocess.normalize(img, name).dtype == np.float32
    with pytest.raises(InputError, match="choose one of robust, zscore, none"):
        preprocess.normalize(img, "minmax")
    opt = torch.optim.AdamW(torch.nn.Linear(1, 1).parameters(), lr=1e-3)
    for name in schedulers.SCHEDULERS:
        assert train.make_scheduler(opt, TrainConfig(scheduler=name), 5) is not None
    with pytest.raises(InputError, match="choose cosine or warm-restarts"):
        schedulers.get_scheduler("step")


@pytest.mark.parametrize("field", sorted(UNMEASURED))
def test_compare_refuses_fields_it_never_reads(field):
    with pytest.raises(InputError, match="never reads") as e:
        parse_vary(f"{field}=1,2")
    assert "\n" not in str(e.value)


def test_device_settings_resolved_in_one_place():
    assert train.resolve_device is device.resolve_device  # the old import path keeps working
    hw = device.settings_for(TrainConfig(device="cpu"))
    assert hw == device.DeviceSettings(torch.device("cpu"), False, False)
    assert device.resolve_settings("cpu", amp=True, channels_last=True).channels_last is True
    assert device.resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(InputError, match="not a device"):
        device.resolve_device("tpu")
