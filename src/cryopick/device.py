"""Where and how a run computes: the device, mixed precision and the memory format, resolved once.

``auto`` settings follow the device: on CUDA, mixed precision (bf16, else fp16 with a
GradScaler) and channels-last (NHWC) are on; on CPU both are off, so CPU runs stay
float32 and deterministic. A command resolves a :class:`DeviceSettings` once (from
``TrainConfig`` with :func:`settings_for`) and hands it down.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import distributed as ddist
from .errors import InputError
from .inference import resolve_amp

__all__ = ["DeviceSettings", "resolve_amp", "resolve_channels_last", "resolve_device", "resolve_settings",
           "settings_for"]


@dataclass(frozen=True)
class DeviceSettings:
    device: torch.device
    amp: bool  # mixed precision (acts on CUDA only)
    channels_last: bool  # NHWC activations


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU. Under torchrun a bare ``cuda`` (or ``auto``
    on a GPU machine) means this process's GPU, ``cuda:LOCAL_RANK``."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name!r} is not a device; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and device.index is None and ddist.launched_distributed():
        device = torch.device("cuda", ddist.env_local_rank())
    return device


def resolve_channels_last(channels_last: bool | None, device: torch.device) -> bool:
    """NHWC on or off: ``None`` means on for CUDA (tensor-core convolutions), off on CPU."""
    return device.type == "cuda" if channels_last is None else bool(channels_last)


def resolve_settings(device: str | torch.device = "auto", amp: bool | None = None,
                     channels_last: bool | None = None) -> DeviceSettings:
    """The device (a name, or an already resolved ``torch.device``) and its amp / channels-last."""
    dev = resolve_device(device)
    return DeviceSettings(dev, resolve_amp(amp, dev), resolve_channels_last(channels_last, dev))


def settings_for(cfg) -> DeviceSettings:
    """The settings a ``TrainConfig`` asks for (its ``device``, ``amp`` and ``channels_last``)."""
    return resolve_settings(cfg.device, cfg.amp, cfg.channels_last)
