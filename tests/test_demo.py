"""The demo end to end on tiny settings: every stage runs and the report links only files that exist."""

import json
import re
from pathlib import Path

from cryopick.cli import main


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
    assert str(out / "report.html") in capsys.readouterr().out
