"""cryopick: cryo-EM particle picking with U-Net / Attention U-Net and self-training."""

__version__ = "0.1.0"
