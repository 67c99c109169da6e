"""Property tests: label files round-trip for arbitrary coordinates, names and whitespace."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cryopick.io import LabelSet, Particles, micrograph_stem, read_labels, write_labels

SETTINGS = settings(max_examples=30, deadline=None)

coord = st.floats(min_value=0.0, max_value=10000.0, allow_nan=False, allow_infinity=False)
score = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
points = st.lists(st.tuples(coord, coord), min_size=1, max_size=12)
plain_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,15}", fullmatch=True).filter(
    lambda n: micrograph_stem(n) == n
)
# Names with inner spaces (STAR quotes them). Not supported by starfile: names that
# start with "_" / "data_" / "loop_" or contain quotes or "#" (see labels.py notes).
spaced_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,14}[A-Za-z0-9]", fullmatch=True).filter(
    lambda n: micrograph_stem(n) == n and not n.lower().startswith(("data_", "loop_"))
)
space = st.sampled_from([" ", "  ", "\t", " \t ", "\t\t"])


@st.composite
def label_sets(draw: st.DrawFn, names: st.SearchStrategy[str], scored: bool | None = None) -> LabelSet:
    stems = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    with_scores = draw(st.booleans()) if scored is None else scored
    out: LabelSet = {}
    for stem in stems:
        xy = np.array(draw(points), dtype=np.float64)
        scores = np.array(draw(st.lists(score, min_size=len(xy), max_size=len(xy)))) if with_scores else None
        out[stem] = Particles(xy, scores)
    return out


def _assert_same(got: LabelSet, want: LabelSet, tol: float = 0.0) -> None:
    assert set(got) == set(want)
    for stem, p in want.items():
        q = got[stem]
        assert q.xy.shape == p.xy.shape
        if tol:
            assert np.abs(q.xy - p.xy).max() <= tol + 1e-9
        else:
            np.testing.assert_array_equal(q.xy, p.xy)
        if p.scores is None:
            assert q.scores is None
        else:
            np.testing.assert_array_equal(q.scores, p.scores)


@SETTINGS
@given(labels=label_sets(spaced_name))
def test_star_round_trip(labels: LabelSet) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "picks.star"
        write_labels(labels, path, "star")
        _assert_same(read_labels(path), labels)


@SETTINGS
@given(labels=label_sets(plain_name))
def test_topaz_and_json_round_trip(labels: LabelSet) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, name in (("topaz", "picks.txt"), ("json", "picks.json")):
            path = Path(tmp) / name
            write_labels(labels, path, fmt, micrograph_suffix=".png")
            _assert_same(read_labels(path), labels)


@SETTINGS
@given(labels=label_sets(plain_name), diameter=st.one_of(st.none(), st.floats(1, 1000)))
def test_csv_round_trip(labels: LabelSet, diameter: float | None) -> None:
    for p in labels.values():
        p.diameter = diameter
    with tempfile.TemporaryDirectory() as tmp:
        write_labels(labels, Path(tmp) / "csv", "csv")
        back = read_labels(Path(tmp) / "csv")
        _assert_same(back, labels)
        assert all(q.diameter == diameter for q in back.values())


@SETTINGS
@given(labels=label_sets(plain_name, scored=False), box=st.integers(min_value=1, max_value=400))
def test_box_round_trip_within_half_pixel(labels: LabelSet, box: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write_labels(labels, Path(tmp) / "box", "box", box_size=box)
        _assert_same(read_labels(Path(tmp) / "box"), labels, tol=0.5)


@SETTINGS
@given(
    rows=st.lists(st.tuples(plain_name, coord, coord, score), min_size=1, max_size=10),
    seps=st.lists(space, min_size=40, max_size=40),
    lead=space,
)
def test_topaz_tolerates_extra_whitespace(
    rows: list[tuple[str, float, float, float]], seps: list[str], lead: str
) -> None:
    lines = [lead.join(["image_name", "x_coord", "y_coord", "score"])]
    for i, (name, x, y, s) in enumerate(rows):
        sep = seps[i % len(seps)]
        lines.append(lead + sep.join([name, repr(x), repr(y), repr(s)]) + seps[-1 - i % len(seps)])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "picks.txt"
        path.write_text("\n".join(lines) + "\n\n")
        labels = read_labels(path)
    for name in {r[0] for r in rows}:
        want = [(x, y) for n, x, y, _ in rows if n == name]
        np.testing.assert_array_equal(labels[name].xy, np.array(want))
        np.testing.assert_array_equal(labels[name].scores, [s for n, *_, s in rows if n == name])


@SETTINGS
@given(
    rows=st.lists(
        st.tuples(st.integers(-100, 10000), st.integers(-100, 10000), st.integers(1, 500)), min_size=1, max_size=10
    ),
    seps=st.lists(space, min_size=8, max_size=8),
)
def test_box_tolerates_extra_whitespace(rows: list[tuple[int, int, int]], seps: list[str]) -> None:
    lines = [seps[i % 8] + seps[(i + 1) % 8].join(map(str, (x, y, b, b))) + seps[(i + 2) % 8] for i, (x, y, b) in enumerate(rows)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mic.box"
        path.write_text("\n\n".join(lines))
        labels = read_labels(path)
    want = np.array([(x + b / 2, y + b / 2) for x, y, b in rows], dtype=np.float64)
    np.testing.assert_array_equal(labels["mic"].xy, want)
