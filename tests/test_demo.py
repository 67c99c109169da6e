"""The demo end to end on tiny settings: every stage runs and the report links only files that exist."""

import json
import re
from pathlib import Path

import pytest

from cryopick.cli import main


@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--device", "cpu"]) == 0
    summary = json.loads((out / "demo_summary.json").read_text())
    assert set(summary["test_particles"]) == {"supervised", "self-trained"}
    assert set(summary["comparison"]) == {"unet", "attention-unet"}
    for f in ["selftrain/final_model.pt", "compare/comparison.md", "figures/picks_test.png",
              "figures/augmentation_examples.png", "figures/attention_maps.png", "report.html"]:
        assert (out / f).is_file(), f
    html = (out / "report.html").read_text()
    for section in ['id="figures"', 'id="compare-comparison"', 'id="selftrain-selftrain"',
                    'id="picks-self-trained-evaluation-evaluation-pr"', 'id="run-selftrain-supervised"']:
        assert section in html
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert ref.startswith(("data:", "#")) or (out / ref).exists(), ref
    log = capsys.readouterr().out
    assert str(out / "report.html") in log
    # the picks are the calibrated picks; every candidate only in its own, marked folder
    assert "P/R at best not shown" not in log and " test P " in log
    for label in ("supervised", "self-trained"):
        t = summary["test_particles"][label]
        assert t["threshold_source"] == "calibrated on validation micrographs" and t["threshold"] > 0.05
    picks = out / "picks_self_trained"
    assert not json.loads((picks / "pick_summary.json").read_text())["all_candidates"]
    assert not (picks / "picks.star").read_text().startswith("# cryopick pick --all-candidates")
    assert (picks / "all_candidates" / "picks.star").read_text().startswith("# cryopick pick --all-candidates")
    assert html.index('id="summary"') < html.index('id="contents"') and "model to use" in html
    assert len(html.encode()) < 3_000_000
