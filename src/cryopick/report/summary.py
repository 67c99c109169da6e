"""The top of the report: what ran, what it picked, how good it is, the model to use and what to run next.

:func:`summary_section` reads the run folder and its sub-runs (up to two folders down)
and states, in a few lines: the stages that ran and on how many micrographs; the
particles picked, at which threshold and where the threshold came from (flagged when a
pick run wrote every candidate); validation and test particle F1 and AP; the change
from the supervised model to the self-trained one; the model file to use; and the next
command, ready to copy. :func:`work_order` sorts sub-runs in the order of the work
(data, training, self-training, picking, evaluation, comparison), and
:data:`PIXEL_VS_PARTICLE` is the one-line caption that says why pixel and particle
metrics differ. :func:`compact_image` keeps large, noisy figures (micrographs) small
enough to embed.
"""

from __future__ import annotations

import io
import json
import math
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import runlayout as layout

__all__ = ["PIXEL_VS_PARTICLE", "summary_section", "work_order", "compact_image", "candidates_note"]

PIXEL_VS_PARTICLE = ("Pixel metrics score the probability map pixel by pixel against target disks drawn smaller "
                     "than the particles; particle metrics match picked centres to true centres within the match "
                     "radius. A pick on the right particle whose blob is larger or offset by a few pixels counts "
                     "fully as a particle but poorly in pixels, so pixel F1 sits far below particle F1: judge "
                     "picking by the particle metrics.")
WORK_RANK = {"training": 1, "selftrain": 2, "pick": 3, "evaluation": 4, "comparison": 5, "figures": 6}
JPEG_ABOVE = 250_000  # PNGs larger than this are embedded as JPEG when that is smaller


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _obj(path: Path) -> dict:
    """A JSON file's object, or {} (missing, unreadable, or not an object)."""
    v = _read(path)
    return v if isinstance(v, dict) else {}


def _run_summary(folder: Path, kind: str) -> layout.RunSummary | None:
    """A run's summary (:func:`cryopick.runlayout.read_summary`), None when absent or unreadable."""
    try:
        return layout.read_summary(folder, kind)
    except ValueError:
        return None


def _summary(folder: Path, kind: str) -> dict:
    """A run summary's content, or {}."""
    s = _run_summary(folder, kind)
    return s.data if s is not None else {}


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


def _f(v: Any, digits: int = 3) -> str:
    x = _num(v)
    return f"{x:.{digits}f}" if math.isfinite(x) else "—"


def work_order(sub: Path, kinds_of) -> tuple:
    """Sort key of a sub-run folder: the earliest stage of the work in it (else one folder down)."""
    ranks = [WORK_RANK.get(k, 7) for k in kinds_of(sub)]
    try:
        children = [c for c in sub.iterdir() if c.is_dir() and not c.name.startswith(".")] if not ranks else []
    except OSError:
        children = []
    for child in children:
        ranks += [WORK_RANK.get(k, 7) + 0.5 for k in kinds_of(child)]
    return (min(ranks, default=8), sub.name != "supervised", sub.name)


def candidates_note(summary: Mapping) -> str | None:
    if not summary.get("all_candidates"):
        return None
    return ("These are EVERY candidate peak (pick --all-candidates), not the picks: for precision-recall curves "
            "only. Pick again without --all-candidates to export particles.")


# --------------------------------------------------------------------------- gathering


def _dirs(d: Path, depth: int = 2) -> list[Path]:
    out = [d]
    if depth > 0:
        try:
            subs = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            subs = []
        for s in subs:
            out += _dirs(s, depth - 1)
    return out


def _facts(d: Path) -> dict:
    f: dict[str, Any] = {"demo": _read(d / layout.DEMO_SUMMARY)}
    dirs = _dirs(d)
    f["selftrain"] = next((x for x in dirs if layout.summary_path(x, "selftrain").is_file()), None)
    f["train"] = next((x for x in dirs if layout.summary_path(x, "train").is_file()
                       and x.parent.name != "compare" and x.name != layout.SUPERVISED), None)
    f["picks"] = [x for x in dirs if (x / layout.PICK_SUMMARY).is_file()]
    f["compare"] = next((x for x in dirs if (x / layout.COMPARISON).is_file()), None)
    return f


def _evaluation(pick_dir: Path, name: str) -> Mapping | None:
    m = layout.read_evaluation(pick_dir / name)
    return m.get("overall") if m is not None and isinstance(m.get("overall"), Mapping) else None


def _main_pick(picks: list[Path], model: Path | None) -> Path | None:
    """The pick run to headline: not all candidates, of the model to use if one is, else the last."""
    real = [p for p in picks if not _obj(p / layout.PICK_SUMMARY).get("all_candidates")]
    if model is not None:
        for p in real:
            models = _obj(p / layout.PICK_SUMMARY).get("models") or []
            if any(Path(m).resolve() == model.resolve() for m in models):
                return p
    return real[-1] if real else (picks[-1] if picks else None)


# --------------------------------------------------------------------------- rows


def _ran_row(f: dict, d: Path) -> str:
    stages = []
    demo = f["demo"] if isinstance(f["demo"], Mapping) else None
    if demo:
        s = demo.get("settings") or {}
        stages.append(f"simulated data ({s.get('n_train')} training micrographs with "
                      f"{_num(s.get('labelled_fraction')) * 100:.0f} % of the particles labelled, {s.get('n_val')} "
                      f"validation, {s.get('n_test')} test; {s.get('size')}x{s.get('size')} px)")
    if f["train"] is not None:
        stages.append("training")
    if f["selftrain"] is not None:
        ts = _summary(f["selftrain"], "selftrain")
        stages.append(f"supervised training + {len(ts.get('iterations') or [])} self-training iteration(s)")
    if f["picks"]:
        cand = sum(bool(_obj(p / layout.PICK_SUMMARY).get("all_candidates")) for p in f["picks"])
        stages.append(f"picking ({len(f['picks']) - cand} run(s) at the threshold"
                      + (f", {cand} of every candidate for AP)" if cand else ")"))
    if f["compare"] is not None:
        stages.append("architecture comparison")
    if demo and demo.get("seconds"):
        stages.append(f"{_num(demo['seconds']):.0f} s in all")
    return "; ".join(stages) or "—"


def _model(f: dict, d: Path) -> tuple[Path | None, str]:
    if f["selftrain"] is not None:
        ts = _summary(f["selftrain"], "selftrain")
        shipped = ts.get("shipped") or "the last iteration"
        return _model_file(f["selftrain"], "selftrain"), f"(= {shipped}, the best validation particle F1 of the candidates)"
    if f["train"] is not None:
        return _model_file(f["train"], "train"), "(the epoch with the best validation particle AP)"
    return None, ""


def _model_file(folder: Path, kind: str) -> Path:
    """The model a run hands on, as its summary names it (the kind's default for older runs)."""
    s = _run_summary(folder, kind)
    return s.model if s is not None else folder / layout.MODEL_OF[kind]


def _validation_rows(f: dict) -> list[tuple[str, str]]:
    if f["selftrain"] is None:
        return []
    ts = _summary(f["selftrain"], "selftrain")
    fin, base = ts.get("final_particles") or {}, (ts.get("candidates") or {}).get("baseline") or {}
    rows = [("validation particles", f"F1 {_f(fin.get('f1'))}, AP {_f(fin.get('ap'))} (final model)")]
    if base:
        its = {k: v for k, v in (ts.get("candidates") or {}).items() if k != "baseline"}
        best = max(its.items(), key=lambda kv: _num(kv[1].get("f1")), default=None)
        text = f"supervised F1 {_f(base.get('f1'))}, AP {_f(base.get('ap'))}"
        if best:
            delta = _num(best[1].get("f1")) - _num(base.get("f1"))
            text += (f" → best self-trained ({best[0]}) F1 {_f(best[1].get('f1'))}, AP {_f(best[1].get('ap'))} "
                     f"({delta:+.3f} F1); shipped: {ts.get('shipped')}")
            if ts.get("shipped") == "baseline":
                text += " (self-training did not help on the validation micrographs, so the supervised model is used)"
        rows.append(("supervised → self-trained (validation)", text))
    return rows


def _pick_rows(f: dict, pick: Path | None) -> list[tuple[str, str]]:
    if pick is None:
        return []
    s = _obj(pick / layout.PICK_SUMMARY)
    text = (f"{s.get('n_picks')} particles on {s.get('n_micrographs')} micrographs at score threshold "
            f"{_f(s.get('threshold'))} ({s.get('threshold_source') or 'threshold source not recorded'})")
    rows = [("picked", text + f" — {pick.name}/")]
    if s.get("all_candidates"):
        rows.append(("warning", candidates_note(s) or ""))
    ev, cand = _evaluation(pick, "evaluation"), _evaluation(pick, "evaluation_all_candidates")
    if ev:
        text = f"precision {_f(ev.get('precision'))}, recall {_f(ev.get('recall'))}, F1 {_f(ev.get('f1'))} at that threshold"
        if cand:
            text += f"; AP {_f(cand.get('ap'))} over all candidates (best F1 {_f(cand.get('best_f1'))})"
        rows.append(("test particles", text))
    others = [p for p in f["picks"] if p != pick and p.parent == pick.parent and _evaluation(p, "evaluation")]
    for o in others:
        e = _evaluation(o, "evaluation") or {}
        rows.append((f"test particles, {o.name}", f"F1 {_f(e.get('f1'))} (vs {_f((ev or {}).get('f1'))} for {pick.name})"))
    return rows


def _next_command(model: Path | None, f: dict) -> str | None:
    if model is None:
        return None
    demo = f["demo"] if isinstance(f["demo"], Mapping) else {}
    mics = demo.get("test_micrographs") or "YOUR_MICROGRAPHS/"
    out = model.parent.parent / "my_picks" if demo else Path("picks")
    return " ".join(["cryopick", "pick", "--model", shlex.quote(str(model.resolve())), "--out",
                     shlex.quote(str(out.resolve() if demo else out)), shlex.quote(str(mics)),
                     "--format", "star", "--format", "relion"])


def summary_rows(d: Path) -> tuple[list[tuple[str, str]], str | None, Path | None]:
    """(rows, next command, model path) of the run folder ``d``."""
    f = _facts(d)
    model, why = _model(f, d)
    pick = _main_pick(f["picks"], model)
    rows = [("what ran", _ran_row(f, d))]
    rows += _pick_rows(f, pick)
    rows += _validation_rows(f)
    if f["compare"] is not None:
        comp = _obj(f["compare"] / layout.COMPARISON)
        parts = [f"{n}: particle F1 {_f((v.get('metrics') or {}).get('particle_best_f1'))}, pixel F1 "
                 f"{_f((v.get('metrics') or {}).get('best_f1'))}" for n, v in (comp.get("variants") or {}).items()
                 if isinstance(v, Mapping)]
        if parts:
            rows.append(("comparison (validation)", "; ".join(parts)))
    if model is not None:
        rows.append(("model to use", f"{model} {why}"))
    return rows, _next_command(model, f), model


def summary_section(d: Path, ctx, section_cls, escape) -> Any:
    """The summary :class:`Section` (``section_cls``) of ``d``, or None when nothing is known."""
    try:
        rows, command, model = summary_rows(d)
    except Exception:  # noqa: BLE001 - the sections below report broken files; the summary is left out
        return None
    if len(rows) <= 1 and command is None:
        return None
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    html = f'<table class="kv summary">{body}</table>'
    if model is not None and model.exists():
        html += f'<p class="sources">Model: {ctx.link(model, str(model.name))}</p>'
    if command:
        html += f"<p><strong>Next:</strong> pick your micrographs with this model:</p><pre>{escape(command)}</pre>"
    html += f'<p class="caption">{escape(PIXEL_VS_PARTICLE)}</p>'
    return section_cls(ctx.new_id("summary"), "Summary", html)


# --------------------------------------------------------------------------- images


def compact_image(png: bytes) -> tuple[bytes, str]:
    """(bytes, MIME type) to embed: a large PNG (a noisy micrograph compresses badly) as a
    JPEG (quality 88) when that is smaller; small PNGs as they are."""
    if len(png) <= JPEG_ABOVE:
        return png, "image/png"
    try:
        from PIL import Image

        with Image.open(io.BytesIO(png)) as im:
            rgb = im.convert("RGBA")
            flat = Image.new("RGB", rgb.size, (255, 255, 255))
            flat.paste(rgb, mask=rgb.split()[3])
            buf = io.BytesIO()
            flat.save(buf, format="JPEG", quality=88, optimize=True)
    except Exception:  # noqa: BLE001 - keep the PNG when it cannot be converted
        return png, "image/png"
    data = buf.getvalue()
    return (data, "image/jpeg") if len(data) < len(png) else (png, "image/png")
