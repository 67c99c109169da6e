"""comparison.md: the experiment design, the results, the spread over seeds and the training curves."""

from __future__ import annotations

from .fields import SELFTRAIN_MODE, display
from .history import key_metrics, mean_std, num
from .tables import (diff_header, dpct, fair_rows, fmt_int, history_table, metric_rows, pct, rel, secs, signed_int,
                     table)

_SEED_ROWS = (("best_f1", "Best F1", "pct"), ("best_precision", "Precision (best epoch)", "pct"),
              ("best_recall", "Recall (best epoch)", "pct"), ("best_iou", "IoU (best epoch)", "pct"),
              ("best_auc", "AUC (best epoch)", "pct"), ("final_f1", "Final F1", "pct"),
              ("particle_best_f1", "Particle F1", "pct"), ("particle_best_ap", "Particle AP", "pct"),
              ("best_epoch", "Best epoch", "num"), ("seconds_per_epoch", "Time per epoch (s)", "num"))


def _design(result: dict) -> list[str]:
    field, seeds = result["field"], result["seeds"]
    what = ("supervised training vs self-training" if field == SELFTRAIN_MODE
            else f"`{field}` = " + ", ".join(f"`{display(v)}`" for v in result["values"]))
    check = result["config_check"]
    L = [f"# Fair Comparison: {' vs '.join(result['names'])}", "", "## Experiment Design", "",
         f"Every variant trains under one shared configuration that differs only in {what}: the same "
         f"data split, the same seed{'s' if len(seeds) > 1 else ''} ({', '.join(map(str, seeds))}) and every other "
         "setting identical. The configs were diffed before training "
         f"(config check: {'passed' if check['ok'] else 'FAILED'}, differs only in `{check['differs_only_in']}`).", ""]
    return L + table(["Factor", "Configuration", "Status"], fair_rows(result)) + [""]


def _performance_rows(result: dict) -> list[list[str]]:
    names, diff = result["names"], result["differences"]
    m = {n: result["variants"][n]["metrics"] for n in names}

    def rel_cells(key: str) -> list[str]:
        return [rel(m[names[0]].get(key), m[n].get(key)) for n in names[1:]]

    rows = metric_rows(result, "best")
    rows.append(["**Best Epoch**", *[fmt_int(m[n]["best_epoch"]) for n in names], *["-" for _ in names[1:]]])
    rows.append(["**Parameters**", *[fmt_int(m[n]["parameters"]) for n in names],
                 *[f"{signed_int(diff.get('parameters', {}).get(n))} ({c})"
                   for n, c in zip(names[1:], rel_cells("parameters"))]])
    rows.append(["**Time per epoch** (training)", *[secs(m[n]["seconds_per_epoch"]) for n in names],
                 *rel_cells("seconds_per_epoch")])
    rows.append(["**Inference time** (per validation micrograph)", *[secs(m[n]["inference_seconds"]) for n in names],
                 *rel_cells("inference_seconds")])
    for which, label in (("best", "best checkpoint"), ("final", "final checkpoint")):
        for k, metric in (("f1", "F1"), ("ap", "AP")):
            key = f"particle_{which}_{k}"
            rows.append([f"**Particle {metric}** ({label})", *[pct(m[n].get(key)) for n in names],
                         *[dpct(diff.get(key, {}).get(n)) for n in names[1:]]])
    return rows


def _results(result: dict) -> list[str]:
    names, seeds = result["names"], result["seeds"]
    dh = diff_header(names)
    agg = f" (mean over {len(seeds)} seeds)" if len(seeds) > 1 else ""
    L = ["## Results", "", f"### Performance Comparison{agg}", "",
         "Pixel metrics (threshold 0.5) on the validation micrographs at each variant's best epoch "
         "(highest validation F1).", ""]
    L += table(["Metric", *names, *dh], _performance_rows(result)) + [""]
    L += ["Differences of percentages are in percentage points; parameters and times as relative change. "
          "Particle F1 is the best F1 over score thresholds (the calibrated pick threshold) and AP the "
          "average precision, on the validation micrographs.", ""]
    final_epochs = {(v.get("final") or {}).get("epoch") for v in result["variants"].values()}
    ep = f" (epoch {final_epochs.pop()})" if len(final_epochs) == 1 and None not in final_epochs else ""
    L += [f"### Final Epoch{ep}{agg}", ""]
    return L + table(["Metric", *names, *dh], metric_rows(result, "final")) + [""]


def _spread_cell(mu, sd, fmt: str) -> str:
    if num(mu) is None:
        return "n/a"
    if fmt == "pct":
        return f"{100 * mu:.2f} ± {100 * sd:.2f}%" if num(sd) is not None else pct(mu)
    return f"{mu:.2f} ± {sd:.2f}" if num(sd) is not None else f"{mu:.2f}"


def _seed_spread_rows(result: dict) -> list[list[str]]:
    names, variants, diff = result["names"], result["variants"], result["differences"]
    rows = []
    for key, label, fmt in _SEED_ROWS:
        cells = [_spread_cell(variants[n]["mean"].get(key), variants[n]["std"].get(key), fmt) for n in names]
        dcells = []
        for n in names[1:]:
            d = diff.get(key, {}).get(n)
            dcells.append("n/a" if num(d) is None else (dpct(d) if fmt == "pct" else f"{d:+.2f}"))
        rows.append([f"**{label}**", *cells, *dcells])
    return rows


def _seed_notes(result: dict) -> list[str]:
    names, variants, first = result["names"], result["variants"], result["names"][0]
    notes = []
    for n in names[1:]:
        per = [key_metrics(a)["best_f1"] for a in variants[n]["runs"]]
        ref = [key_metrics(a)["best_f1"] for a in variants[first]["runs"]]
        pairs = [(b - a) for a, b in zip(ref, per) if num(a) is not None and num(b) is not None]
        if pairs:
            mu, sd = mean_std(pairs)
            wins = sum(d > 0 for d in pairs)
            spread = f" ± {100 * sd:.2f}" if sd is not None else ""
            notes.append(f"{n} minus {first}: {100 * mu:+.2f}{spread} points of best F1 "
                         f"({n} higher in {wins} of {len(pairs)} seeds)")
    return ["; ".join(notes) + ".", ""] if notes else []


def _seeds(result: dict) -> list[str]:
    names, variants, seeds = result["names"], result["variants"], result["seeds"]
    if len(seeds) == 1:
        return [f"**Significance**: each variant was trained once (seed {seeds[0]}). A single run is not significant: "
                "the seed alone moves these metrics, so a difference this size may not repeat. Rerun with "
                "`--seeds 42,43,44` to measure the seed-to-seed spread (mean ± std).", ""]
    dh = diff_header(names)
    L = [f"### Across Seeds (mean ± std over {len(seeds)} seeds)", ""]
    L += table(["Metric", *names, *dh], _seed_spread_rows(result)) + [""]
    L += ["Best validation F1 of every run:", ""]
    rows = []
    for i, s in enumerate(seeds):
        vals = [key_metrics(variants[n]["runs"][i])["best_f1"] for n in names]
        rows.append([str(s), *[pct(v) for v in vals],
                     *[dpct(v - vals[0]) if num(v) is not None and num(vals[0]) is not None else "n/a"
                       for v in vals[1:]]])
    L += table(["Seed", *names, *dh], rows) + [""]
    return L + _seed_notes(result) + [
        f"Mean ± sample standard deviation over {len(seeds)} seeds on the same data split. A difference "
        "smaller than the seed-to-seed standard deviation is not significant, and no single run shows one: "
        "one run per variant cannot separate the effect of the varied setting from the luck of the seed.", ""]


def _curves(result: dict) -> list[str]:
    several = len(result["seeds"]) > 1
    L = ["## Training Curves", ""]
    if result.get("figures", {}).get("training_curves"):
        L += [f"![training curves]({result['figures']['training_curves']})", ""]
    for n in result["names"]:
        v = result["variants"][n]
        for run in (v["runs"] if several else [v]):
            L += [f"### {n} Performance Over Time" + (f" (seed {run['seed']})" if several else ""), ""]
            if run.get("curve"):
                L += history_table(run["curve"]) + [""]
                L += [f"**Best Performance**: Epoch {run.get('best_epoch')}", ""]
            else:
                L += ["No validation records (no labelled validation micrographs).", ""]
            L += [f"Run directory: `{run.get('run_dir')}`", ""]
    return L


def render_markdown(result: dict) -> str:
    """comparison.md from a comparison result (the content of comparison.json)."""
    L = _design(result) + _results(result) + _seeds(result) + _curves(result)
    return "\n".join(L).rstrip() + "\n"
