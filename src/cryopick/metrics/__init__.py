"""Pixel metrics (segmentation view, :mod:`.pixel`) and particle metrics (picking view,
:mod:`.particle`: one-to-one matching within a radius, PR curve, AP, calibrated operating point)."""

from cryopick.metrics.particle import ParticleMetrics, evaluate_picks, greedy_match, match_particles, pr_curve
from cryopick.metrics.pixel import EXACT_AUC_MAX_PIXELS, PixelAccumulator, PixelMetrics, pixel_metrics, roc_auc

__all__ = ["EXACT_AUC_MAX_PIXELS", "PixelMetrics", "PixelAccumulator", "pixel_metrics", "roc_auc", "ParticleMetrics",
           "match_particles", "greedy_match", "evaluate_picks", "pr_curve"]
