"""Tests of cryopick.report: figures (PNG files, pick colouring counts) and the HTML report."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

from cryopick import cli
from cryopick.errors import InputError
from cryopick.metrics import evaluate_picks
from cryopick.report import figures as F
from cryopick.report.html import (
    build_report,
    find_runs,
    markdown_to_html,
    render_report,
    run_kinds,
    write_report,
)

PNG = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[1]


def is_png(path: Path) -> bool:
    data = Path(path).read_bytes()
    return len(data) > 100 and data.startswith(PNG)


def no_temp_files(d: Path) -> bool:
    return not [p for p in d.iterdir() if ".tmp" in p.name]


# --------------------------------------------------------------------------- fake run dirs


def history(n: int = 6, every: int = 2) -> list[dict]:
    out = []
    for e in range(1, n + 1):
        rec = {"epoch": e, "train_loss": 1.0 / e, "lr": 1e-3, "seconds": 0.5}
        if e % every == 0 or e == n:
            f1 = 0.5 + 0.04 * e - (0.1 if e == n else 0)
            rec.update(precision=f1 + 0.05, recall=f1 - 0.05, f1=f1, iou=f1 / (2 - f1),
                       auc=None if e == every else 0.9, threshold=0.5, n_pixels=1000)
        out.append(rec)
    return out


def write_png(path: Path, size: int = 16) -> Path:
    """A small PNG (cheaper than a matplotlib figure, for fixtures)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.arange(size * size).reshape(size, size) % 256).astype(np.uint8)).save(path)
    return path


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def make_training(d: Path, n: int = 6) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.yaml").write_text(
        "cryopick_version: 0.1.0\ncommand: cryopick train --out x\n"
        "data:\n  images: [a.mrc, b.mrc]\n  radius: 20\nmodel:\n  arch: unet\n  base_features: 8\n"
        "train:\n  epochs: 6\n  lr: 0.001\nselftrain:\n  iterations: 2\npick:\n  threshold: null\n")
    h = history(n)
    write_json(d / "metrics.json", h)
    best = max((r for r in h if "f1" in r), key=lambda r: r["f1"])
    write_json(d / "train_summary.json", {"best_f1": best["f1"], "best_epoch": best["epoch"], "parameters": 123456,
                                          "seconds_per_epoch": 0.5, "pick_threshold": 0.42, "final": h[-1]})
    return d


def pixel(f1):
    return {"precision": f1, "recall": f1, "f1": f1, "iou": f1 / (2 - f1), "auc": 0.9, "threshold": 0.5,
            "n_pixels": 100}


def make_selftrain(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    its = [{"iteration": k, "positive_threshold": 0.95, "negative_threshold": 0.05, "pseudo_positive": 3.0 + k,
            "reliable_negative": 80.0 - k, "positive": 4.0, "negative": 70.0, "ignored": 26.0 + k,
            "label_agreement": 0.9, "train_loss": 0.1 * k, "validation": pixel(0.6 + 0.05 * k),
            "warnings": ["training loss rose (0.1 -> 0.2); consider a lower --lr"] if k == 2 else []}
           for k in (1, 2)]
    write_json(d / "training_summary.json", {
        "config": {"selftrain": {"iterations": 2, "positive_threshold": 0.95}}, "baseline": pixel(0.6),
        "iterations": its, "warnings": ["iteration 2: training loss rose <0.1 -> 0.2>"], "final": pixel(0.7),
        "pick_threshold": 0.5})
    write_json(d / "supervised" / "metrics.json", history(4, 1))
    write_json(d / "iteration_1" / "metrics.json", history(2, 1))
    return d


def make_pick(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "picks.star").write_text("data_\n")
    (d / "config.yaml").write_text("cryopick_version: 0.1.0\ncommand: cryopick pick\npick:\n  threshold: 0.5\n")
    write_json(d / "pick_summary.json", {
        "n_micrographs": 3, "n_picks": 30, "threshold": 0.5, "seconds_per_micrograph": 0.1,
        "per_micrograph": {"m1": 10, "m2": 12, "m10": 8},
        "outputs": [str(d / "picks.star"), "somewhere/else/missing.box"]})
    return d


def make_evaluation(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    picks = {"m1": (np.array([[10.0, 10], [50, 50], [90, 90]]), np.array([0.9, 0.8, 0.3]))}
    truth = {"m1": np.array([[11.0, 10], [50, 53], [30, 70]])}
    overall, per = evaluate_picks(picks, truth, radius=5)
    write_json(d / "metrics.json", {"radius": 5, "overall": overall.as_dict(),
                                    "per_micrograph": {k: v.as_dict() for k, v in per.items()}})
    (d / "pr_curve.csv").write_text("threshold,precision,recall\n0.9,1,0.333\n0.8,1,0.667\n0.3,0.667,0.667\n")
    write_png(d / "pr_curve.png")
    return d


def make_comparison(d: Path, md: bool = True, real_format: bool = True) -> Path:
    """A comparison dir: the format cryopick.compare writes (``metrics``, per-checkpoint particle
    metrics, differences per metric and variant), or the simpler one of the report's brief."""
    d.mkdir(parents=True, exist_ok=True)
    variants = {}
    for name, f in (("unet", 0.7), ("attention-unet", 0.72)):
        v = {"final": pixel(f), "best": pixel(f + 0.01), "best_epoch": 4, "parameters": 1000,
             "seconds_per_epoch": 1.5, "inference_seconds": 0.2, "history": history(4, 1)}
        if real_format:
            v["particle"] = {"best_checkpoint": {"best_f1": f, "ap": f}, "final_checkpoint": None}
            v["metrics"] = {"best_f1": f + 0.01, "best_epoch": 4, "particle_best_f1": f, "particle_best_ap": f}
            if name == "unet":
                v["std"] = {"best_f1": 0.01}
        else:
            v["particle"] = {"f1": f, "ap": f} if name == "unet" else None
        variants[name] = v
    diffs = {"best_f1": {"attention-unet": 0.02}} if real_format else {"best_f1": 0.02}
    write_json(d / "comparison.json", {"field": "model.arch", "variants": variants, "reference": "unet",
                                       "differences": diffs, "seeds": [1, 2]})
    if md:
        write_png(d / "training_curves.png")
        (d / "comparison.md").write_text(
            "# Comparison\n\n| Variant | F1 |\n|---|---|\n| unet | **0.70** |\n\n- one\n- two\n\n"
            "![training curves](training_curves.png)\n\n![gone](missing.png)\n")
    return d


def make_figures(d: Path) -> Path:
    write_png(d / "figures" / "curves.png")
    write_png(d / "overview.png")
    (d / "figures" / "not_a_png.png").write_text("text")
    return d


def page_ids(page: str) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', page))


def check_links(page: str, out_dir: Path) -> int:
    """Every src/href is a data URI, an anchor to an id of the page, or a relative path that exists."""
    ids = page_ids(page)
    n = 0
    for attr, value in re.findall(r'\b(src|href)="([^"]*)"', page):
        n += 1
        if value.startswith("data:"):
            assert attr == "src" and value.startswith("data:image/png;base64,")
        elif value.startswith("#"):
            assert value[1:] in ids, value
        else:
            assert "://" not in value and not value.startswith("/"), value
            assert (out_dir / urllib.parse.unquote(value)).exists(), value
    return n


# --------------------------------------------------------------------------- figures


def test_training_curves_single_multi_and_empty(tmp_path):
    assert is_png(F.plot_training_curves(history(5), tmp_path / "a.png", title="run"))
    assert is_png(F.plot_training_curves({"unet": history(4), "attention": history(3, 1)}, tmp_path / "b.png"))
    assert is_png(F.plot_training_curves([], tmp_path / "c.png"))
    assert is_png(F.plot_training_curves([{"epoch": 1, "train_loss": 0.5}], tmp_path / "d.png"))
    assert no_temp_files(tmp_path)


def test_pr_curve_accepts_metrics_and_dicts(tmp_path):
    picks = {"m": (np.array([[0.0, 0], [10, 10], [40, 40]]), np.array([0.9, 0.5, 0.2]))}
    overall, _ = evaluate_picks(picks, {"m": np.array([[0.0, 1], [10, 12]])}, radius=3)
    out = F.plot_pr_curve({"obj": overall, "dict": overall.as_dict(include_curve=True),
                           "no curve": overall.as_dict()}, tmp_path / "pr.png")
    assert out == tmp_path / "pr.png" and is_png(out)
    empty, _ = evaluate_picks({}, {"m": np.array([[0.0, 1]])}, radius=3)
    assert is_png(F.plot_pr_curve({"empty": empty}, tmp_path / "empty.png"))


def test_plot_picks_counts_match_hand_made_case(tmp_path):
    image = np.random.default_rng(0).normal(size=(100, 120)).astype(np.float32)
    picks = np.array([[10.0, 10], [50, 50], [90, 90], [100, 20]])
    truth = np.array([[11.0, 10], [50, 53], [30, 70]])  # 2 found, (30, 70) missed; 2 false picks
    res = F.plot_picks(image, picks, truth, radius=5, path=tmp_path / "p.png")
    assert is_png(res.path)
    assert res.counts == {"picks": 4, "truth": 3, "tp": 2, "fp": 2, "fn": 1}
    assert res.legend == ["true positive (2)", "false positive (2)", "missed (1)"]
    # a smaller match radius than the drawn radius: (50, 53) no longer matches
    res = F.plot_picks(image, picks, truth, 5, tmp_path / "q.png", match_radius=2)
    assert (res.counts["tp"], res.counts["fp"], res.counts["fn"]) == (1, 3, 2)
    # no truth: one colour, or coloured by score
    res = F.plot_picks(image, picks, radius=5, path=tmp_path / "r.png", scores=[0.1, 0.5, 0.9, 1.0])
    assert is_png(res.path) and res.counts == {"picks": 4} and res.legend == ["picks (4)"]
    assert is_png(F.plot_picks(image, np.zeros((0, 2)), np.zeros((0, 2)), 5, tmp_path / "s.png").path)
    with pytest.raises(InputError):
        F.plot_picks(image, picks, truth, radius=0, path=tmp_path / "t.png")
    assert no_temp_files(tmp_path)


def test_plot_picks_large_micrograph_is_downsampled(tmp_path):
    big = np.random.default_rng(1).normal(size=(1030, 1100)).astype(np.float32)
    xy = np.array([[1000.0, 1000.0], [5, 5]])
    res = F.plot_picks(big, xy, xy[:1] + 1, radius=30, path=tmp_path / "big.png")
    assert res.counts["tp"] == 1 and res.counts["fp"] == 1 and res.counts["fn"] == 0
    small, factor = F._downsample(big)
    assert factor == 2 and small.shape == (515, 550)


def test_probability_map_attention_and_selftrain_figures(tmp_path):
    import torch

    from cryopick.models.unet import AttentionUNet, UNet

    image = np.random.default_rng(2).normal(size=(64, 80)).astype(np.float32)
    prob = np.clip(np.random.default_rng(3).random((32, 40)), 0, 1)  # a downsampled map
    assert is_png(F.plot_probability_map(image, prob, tmp_path / "prob.png"))

    torch.manual_seed(0)
    model = AttentionUNet(base_features=2)
    model.train()
    assert is_png(F.plot_attention_maps(model, image, tmp_path / "att.png"))
    assert model.training  # mode restored
    with pytest.raises(InputError):
        F.plot_attention_maps(UNet(base_features=2), image, tmp_path / "no.png")

    summary = json.loads(json.dumps({"baseline": pixel(0.5), "iterations": [
        {"iteration": 1, "pseudo_positive": 2.0, "reliable_negative": 90.0, "ignored": 8.0, "validation": pixel(0.6)},
        {"iteration": 2, "pseudo_positive": 3.0, "reliable_negative": 85.0, "ignored": 12.0, "validation": None}]}))
    assert is_png(F.plot_selftrain(summary, tmp_path / "st.png"))
    assert is_png(F.plot_selftrain({"iterations": []}, tmp_path / "st0.png"))
    assert no_temp_files(tmp_path)


# --------------------------------------------------------------------------- HTML report


KIND_IDS = {
    "training": ["training", "training-config", "training-curves", "training-table", "training-summary"],
    "selftrain": ["selftrain", "selftrain-table", "selftrain-figure", "selftrain-warnings", "run-supervised",
                  "supervised-training", "run-iteration-1", "iteration-1-training-curves"],
    "pick": ["pick", "pick-micrographs"],
    "evaluation": ["evaluation", "evaluation-pr", "evaluation-micrographs"],
    "comparison": ["comparison", "comparison-md"],
    "figures": ["figures"],
}
MAKERS = {"training": make_training, "selftrain": make_selftrain, "pick": make_pick,
          "evaluation": make_evaluation, "comparison": make_comparison, "figures": make_figures}


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_report_sections_per_run_kind(tmp_path, kind):
    d = MAKERS[kind](tmp_path / "run")
    assert kind in run_kinds(d)
    out = build_report(d)
    assert out == d / "report.html"
    page = out.read_text()
    ids = page_ids(page)
    for sid in KIND_IDS[kind]:
        assert sid in ids, sid
    assert "render-error" not in page
    assert "cryopick 0" in page and '<nav class="toc"' in page
    assert check_links(page, out.parent) > 0
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert no_temp_files(d)
    if kind == "evaluation":  # the PR curve is redrawn from the data; pr_curve.png is not repeated
        assert page.count("data:image/png") == 1
    if kind == "pick":
        assert run_kinds(d) == ["pick"]  # its config.yaml does not make it a training run
        assert "pick.threshold" in page
        assert 'href="picks.star"' in page and "missing.box" in page and 'href="somewhere' not in page
    if kind == "figures":  # captioned with the file name; an unreadable file is named, not fatal
        assert page.count("data:image/png") == 2 and "<figcaption>figures/curves.png</figcaption>" in page
        assert "figures/not_a_png.png: not a readable PNG" in page
    if kind == "comparison":  # training_curves.png embedded once, inside the markdown
        assert page.count("data:image/png") == 1 and "gone" in page and "<p><figure" not in page
    if kind == "selftrain":
        assert "&lt;0.1 -&gt; 0.2&gt;" in page  # warnings escaped
        assert "<details><summary>Show details</summary>" in page  # iteration sub-runs collapsed


def test_metric_table_every_n_epochs(tmp_path):
    # 60 epochs validated every 2: rows every 10 epochs, plus the first, the best and the last
    d = make_training(tmp_path / "t", n=60)
    page, _ = render_report(d)
    table = page.split('id="training-table"')[1].split("</table>")[0]
    best = json.loads((d / "train_summary.json").read_text())["best_epoch"]
    assert re.search(rf'<tr class="best"><td>{best}</td>', table)
    assert table.count('class="best"') == 1
    epochs = [int(e) for e in re.findall(r"<tr[^>]*><td>(\d+)</td>", table)]
    assert epochs == sorted({2, 10, 20, 30, 40, 50, 60, best}) and "every 10 epochs" in page
    assert "%" in table


def test_report_demo_layout_with_sub_runs_and_out_elsewhere(tmp_path):
    # the layout of `cryopick demo`: runs one and two folders down, figures/ at the top
    root = tmp_path / "demo"
    (root / "data" / "train").mkdir(parents=True)  # simulated data: no run
    make_selftrain(root / "selftrain")
    make_pick(root / "picks_supervised")
    make_evaluation(root / "picks_supervised" / "evaluation")
    make_comparison(root / "compare")
    make_training(root / "compare" / "unet")
    make_figures(root)
    runs = find_runs(root)
    assert root in runs and root / "selftrain" / "supervised" in runs and root / "data" not in runs
    out = write_report(root, tmp_path / "elsewhere" / "demo.html")
    page = out.read_text()
    ids = page_ids(page)
    for sid in ["figures", "run-selftrain", "selftrain-selftrain-table", "run-selftrain-supervised",
                "selftrain-supervised-training", "run-picks-supervised", "picks-supervised-pick",
                "run-picks-supervised-evaluation", "picks-supervised-evaluation-evaluation-pr", "run-compare",
                "compare-comparison-md", "run-compare-unet", "compare-unet-training-curves"]:
        assert sid in ids, sid
    assert len(re.findall(r'\bid="', page)) == len(ids)  # ids are unique
    assert check_links(page, out.parent) > 0
    assert not (root / "report.html").exists()
    # sub-runs in pipeline order: the supervised phase before the iterations
    assert page.index('id="run-selftrain-supervised"') < page.index('id="run-selftrain-iteration-1"')


@pytest.mark.parametrize("real_format", [True, False])
def test_comparison_from_json_only(tmp_path, real_format):
    d = make_comparison(tmp_path / "c", md=False, real_format=real_format)
    write_json(d / "unet" / "metrics.json", [])  # a variant's run directory (no epoch yet: no figure)
    page = render_report(d)[0]
    ids = page_ids(page)
    for sid in ["comparison", "comparison-table", "comparison-curves", "comparison-details", "run-unet"]:
        assert sid in ids, sid
    table = page.split('id="comparison-table"')[1].split("</table>")[0]
    assert re.search(r'<tr class="best"><td>attention-unet</td>', table)
    assert "0.7000" in table  # particle F1 of unet
    assert ("0.7100 ± 0.01" in table) == real_format
    assert "render-error" not in page
    assert "<details><summary>Show details</summary>" in page  # variant runs collapsed


def test_selftrain_in_progress(tmp_path):
    d = tmp_path / "st"
    make_selftrain(d)
    (d / "training_summary.json").unlink()
    (d / "config.yaml").write_text("cryopick_version: 0.1.0\nselftrain:\n  iterations: 2\n")
    assert run_kinds(d) == ["selftrain"]
    page = render_report(d)[0]
    assert "In progress" in page and {"selftrain", "selftrain-config", "supervised-training"} <= page_ids(page)
    assert "render-error" not in page


def test_broken_file_is_reported_in_the_page(tmp_path):
    d = make_training(tmp_path / "run")
    write_json(d / "metrics.json", [])  # no figure needed here
    (d / "train_summary.json").write_text("{not json")
    page = render_report(d)[0]
    assert "train_summary.json: not valid JSON" in page and "training-curves" in page_ids(page)
    write_json(d / "pick_summary.json", ["not", "an", "object"])
    page = render_report(d)[0]
    assert "render-error" in page and "training-curves" in page_ids(page)


def test_markdown_subset():
    out = markdown_to_html("## T\n\n| a | b |\n|---|:-:|\n| 1 | **2** |\n\n- x `y`\n\ntext <b> *it*\n\n"
                           "1. first\n2. [link](http://x.org) `**raw**`\n\n> quote\n")
    assert "<h5>T</h5>" in out and "<th>a</th>" in out and "<strong>2</strong>" in out
    assert "<li>x <code>y</code></li>" in out and "text &lt;b&gt; <em>it</em>" in out and "---" not in out
    assert "<ol><li>first</li><li>link <code>**raw**</code></li></ol>" in out and "http" not in out
    assert "<blockquote>quote</blockquote>" in out
    assert markdown_to_html("\u2705 same, \U0001f500 varied, \u26a0\ufe0f odd") == (
        '<p><span class="ok">\u2713</span> same, <span class="varied">\u21c4</span> varied, '
        '<span class="bad">\u26a0</span> odd</p>')


def test_report_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    rc = cli.main(["report", str(empty)])
    err = capsys.readouterr().err
    assert rc != 0
    assert err.count("\n") == 1 and "no cryopick run found" in err and str(empty) in err
    assert not (empty / "report.html").exists()
    with pytest.raises(InputError, match="not a directory"):
        render_report(tmp_path / "missing")


def test_report_command(tmp_path, capsys):
    d = make_figures(tmp_path / "run")
    assert cli.main(["report", str(d), "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert "r.html" in capsys.readouterr().out
    assert cli.main(["report", str(d)]) == 0 and (d / "report.html").is_file()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_render_report_script(tmp_path):
    page = build_report(make_figures(tmp_path / "run"))  # the script also accepts RUN_DIR (then builds it)
    out = tmp_path / "shots" / "shot.png"
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "render_report.sh"), str(page), str(out), "800,900"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert is_png(out) and no_temp_files(out.parent)


# --------------------------------------------------------------------------- summary, order, page size


def test_summary_first_and_sections_in_the_order_of_the_work(tmp_path):
    root = tmp_path / "demo"
    make_comparison(root / "compare")
    make_training(root / "compare" / "unet")
    make_pick(root / "picks_self_trained")
    make_evaluation(root / "picks_self_trained" / "evaluation")
    make_selftrain(root / "selftrain")
    make_figures(root)
    s = json.loads((root / "picks_self_trained" / "pick_summary.json").read_text())
    s.update(threshold=0.42, threshold_source="calibrated on validation micrographs", all_candidates=False,
             models=[str(root / "selftrain" / "final_model.pt")])
    write_json(root / "picks_self_trained" / "pick_summary.json", s)
    page, sections = render_report(root)
    assert sections[0].id == "summary"
    assert page.index('id="summary"') < page.index('id="contents"')
    summary = page[page.index('id="summary"'):page.index('id="contents"')]
    for text in ["threshold 0.420 (calibrated on validation micrographs)", "model to use", "final_model.pt",
                 "cryopick pick --model", "--format relion", "precision", "Pixel metrics score"]:
        assert text in summary, text
    order = [page.index(f'id="{i}"') for i in ["run-selftrain", "run-picks-self-trained", "run-compare", "figures"]]
    assert order == sorted(order)
    assert "Pixel metrics score" in page.split('id="compare-comparison-md"')[1][:2000]


def test_all_candidates_picks_are_flagged(tmp_path):
    d = make_pick(tmp_path / "cand")
    s = json.loads((d / "pick_summary.json").read_text())
    write_json(d / "pick_summary.json", {**s, "all_candidates": True, "threshold": 0.05})
    page, _ = render_report(d)
    assert page.count("EVERY candidate peak") >= 2  # the summary and the picking section


def test_large_noisy_figures_are_embedded_as_jpeg(tmp_path):
    from PIL import Image

    from cryopick.report.summary import compact_image

    noisy = np.random.default_rng(0).integers(0, 255, (700, 700, 3), dtype=np.uint8)
    path = tmp_path / "figures" / "micrograph.png"
    path.parent.mkdir()
    Image.fromarray(noisy).save(path)
    data, mime = compact_image(path.read_bytes())
    assert mime == "image/jpeg" and len(data) < path.stat().st_size / 2
    small = write_png(tmp_path / "small.png").read_bytes()
    assert compact_image(small) == (small, "image/png")
    page, _ = render_report(tmp_path)
    assert page.count("data:image/jpeg") == 1 and len(page) < path.stat().st_size
