"""Label files: reading, writing, format guessing and validation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from cryopick.errors import InputError
from cryopick.io import (
    EXTENSIONS,
    FORMATS,
    LabelSet,
    Particles,
    deduplicate,
    guess_format,
    read_labels,
    validate_labels,
    write_labels,
)

SHARED = Path(os.environ.get("CRYOPICK_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
SAMPLE = SHARED / "cryosegnet-10017-sample"
STEM = "Falcon_2012_06_12-14_33_35_0"


def _labels(scored: bool = True) -> LabelSet:
    rng = np.random.default_rng(0)
    out: LabelSet = {}
    for i, n in enumerate((5, 3, 0)):
        xy = rng.uniform(60, 900, size=(n, 2)).round(3)
        out[f"mic_{i}"] = Particles(xy, rng.random(n).round(4) if scored and n else None, 100.0)
    if not scored:
        for p in out.values():
            p.scores = None
    return out


def _target(tmp_path: Path, fmt: str) -> Path:
    return tmp_path / fmt if fmt in ("box", "csv") else tmp_path / f"picks{EXTENSIONS[fmt]}"


# ----------------------------------------------------------------------------- shared data


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared CryoSegNet sample not available")
def test_shared_csv_and_star_agree() -> None:
    csv_labels = read_labels(SAMPLE / f"{STEM}.csv")
    star_labels = read_labels(SAMPLE / "sample.star")
    assert list(csv_labels) == [STEM] and list(star_labels) == [STEM]
    a, b = csv_labels[STEM], star_labels[STEM]
    assert len(a) == 629 and a.diameter == 108.0
    np.testing.assert_array_equal(a.xy, b.xy)
    assert guess_format(SAMPLE / f"{STEM}.csv") == "csv"
    assert guess_format(SAMPLE / "sample.star") == "star"
    assert validate_labels(csv_labels, {STEM: (4096, 4096)}, "sample") == []


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("scored", [True, False])
def test_round_trip_every_format(tmp_path: Path, fmt: str, scored: bool) -> None:
    labels = _labels(scored)
    paths = write_labels(labels, _target(tmp_path, fmt), fmt, box_size=64)
    assert all(p.exists() for p in paths)
    back = read_labels(_target(tmp_path, fmt))
    for stem, p in labels.items():
        if not len(p) and fmt in ("star", "cryosparc", "topaz"):
            assert stem not in back  # one-file formats list particles, not micrographs
            continue
        q = back[stem]
        assert len(q) == len(p)
        if fmt == "box":
            assert np.abs(q.xy - p.xy).max(initial=0) <= 0.5
        else:
            np.testing.assert_array_equal(q.xy, p.xy)
        if scored and len(p) and fmt != "box":
            np.testing.assert_array_equal(q.scores, p.scores)
        else:
            assert q.scores is None or not len(q)
        if fmt == "csv" and len(p):
            assert q.diameter == p.diameter
    assert not [f for f in tmp_path.rglob(".*")], "temporary files left behind"


@pytest.mark.parametrize("fmt", ["star", "cryosparc", "topaz", "json"])
def test_per_micrograph_files(tmp_path: Path, fmt: str) -> None:
    labels = _labels()
    paths = write_labels(labels, tmp_path / "out", fmt, per_micrograph=True)
    assert sorted(p.name for p in paths) == sorted(f"{s}{EXTENSIONS[fmt]}" for s in labels)
    back = read_labels(tmp_path / "out")
    for stem in ("mic_0", "mic_1"):
        np.testing.assert_array_equal(back[stem].xy, labels[stem].xy)
    if fmt in ("star", "cryosparc"):
        assert len(back["mic_2"]) == 0  # an empty per-micrograph STAR names its micrograph by file name


def test_star_writer_columns_and_suffix(tmp_path: Path) -> None:
    import starfile

    write_labels(_labels(), tmp_path / "p.star", "star", micrograph_suffix=".tiff")
    df = starfile.read(tmp_path / "p.star")
    assert list(df.columns) == ["rlnMicrographName", "rlnCoordinateX", "rlnCoordinateY", "rlnAutopickFigureOfMerit"]
    assert set(df["rlnMicrographName"]) == {"mic_0.tiff", "mic_1.tiff"}
    write_labels(_labels(), tmp_path / "p_cryosparc.star", "cryosparc")
    assert "data_particles" in (tmp_path / "p_cryosparc.star").read_text()


def test_box_writer_needs_box_size(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="box size"):
        write_labels(_labels(), tmp_path / "b", "box")


def test_box_writer_corners(tmp_path: Path) -> None:
    labels = {"m": Particles(np.array([[100.0, 50.0], [10.4, 20.6]]))}
    (path,) = write_labels(labels, tmp_path, "box", box_size=64)
    assert path.read_text().splitlines() == ["68\t18\t64\t64", "-22\t-11\t64\t64"]


def test_unknown_write_format(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown label format 'xml'"):
        write_labels(_labels(), tmp_path / "x.xml", "xml")


# ----------------------------------------------------------------------------- hand-written files


def test_hand_written_star(tmp_path: Path) -> None:
    path = tmp_path / "hand.star"
    path.write_text(
        "# written by hand\n\n"
        "data_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnImagePixelSize #2\n1 1.5\n\n"
        "# the particles\ndata_particles\n\nloop_\n"
        "_rlnCoordinateX #1\n_rlnCoordinateY #2\n_rlnMicrographName #3\n_rlnAnglePsi #4\n"
        "_rlnAutopickFigureOfMerit #5\n"
        '100.5 200 "Movies/my mic 1.mrc" -999 0.5\n\n'
        "# a comment row\n"
        "  300   400.25   'my mic 1.mrc'   12   0.75\n\n"
        "10\t20\tplain.mrc\t0\t1.0\n"
    )
    labels = read_labels(path)
    assert list(labels) == ["my mic 1", "plain"]
    np.testing.assert_array_equal(labels["my mic 1"].xy, [[100.5, 200.0], [300.0, 400.25]])
    np.testing.assert_array_equal(labels["my mic 1"].scores, [0.5, 0.75])
    np.testing.assert_array_equal(labels["plain"].xy, [[10.0, 20.0]])


def test_star_without_name_column_uses_file_stem(tmp_path: Path) -> None:
    (tmp_path / "mic_7_autopick.star").write_text("data_\n\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n1 2\n3 4\n")
    labels = read_labels(tmp_path / "mic_7_autopick.star")
    assert list(labels) == ["mic_7"]
    assert read_labels(tmp_path / "mic_7_autopick.star", micrograph_name="other").keys() == {"other"}


def test_star_column_names_without_rln(tmp_path: Path) -> None:
    (tmp_path / "a.star").write_text("data_\nloop_\n_CoordinateX\n_CoordinateY\n_MicrographName\n1 2 m.mrc\n")
    assert read_labels(tmp_path / "a.star")["m"].xy.tolist() == [[1.0, 2.0]]


def test_hand_written_box(tmp_path: Path) -> None:
    (tmp_path / "mic.box").write_text("10\t20\t100\t100\n\n  -5   7  100 100  -3\n")
    labels = read_labels(tmp_path / "mic.box")
    np.testing.assert_array_equal(labels["mic"].xy, [[60, 70], [45, 57]])


def test_hand_written_topaz(tmp_path: Path) -> None:
    (tmp_path / "picks.txt").write_text(
        "image_name\tx_coord\ty_coord\tscore\n"
        "mic a\t10\t20\t-1.5\n"
        "b  30  40  2\n"
        "mic a\t50\t60\t0.25\n"
    )
    assert guess_format(tmp_path / "picks.txt") == "topaz"
    labels = read_labels(tmp_path / "picks.txt")
    np.testing.assert_array_equal(labels["mic a"].xy, [[10, 20], [50, 60]])
    np.testing.assert_array_equal(labels["mic a"].scores, [-1.5, 0.25])
    np.testing.assert_array_equal(labels["b"].xy, [[30, 40]])


def test_hand_written_json_with_scores(tmp_path: Path) -> None:
    (tmp_path / "seeds.json").write_text(json.dumps({"dir/img.png": [[1, 2, 0.9], [3.5, 4, 0.1]], "other.mrc": []}))
    labels = read_labels(tmp_path / "seeds.json")
    np.testing.assert_array_equal(labels["img"].xy, [[1, 2], [3.5, 4]])
    np.testing.assert_array_equal(labels["img"].scores, [0.9, 0.1])
    assert len(labels["other"]) == 0


def test_generic_csv_with_names(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("micrograph,x,y,score\na.mrc,1,2,0.5\nb.mrc,3,4,0.25\n")
    labels = read_labels(tmp_path / "p.csv")
    assert labels["b"].xy.tolist() == [[3.0, 4.0]] and labels["a"].scores.tolist() == [0.5]


def test_cryosparc_cs_file(tmp_path: Path) -> None:
    dtype = [
        ("location/micrograph_path", "S64"),
        ("location/micrograph_shape", "<u4", (2,)),
        ("location/center_x_frac", "<f4"),
        ("location/center_y_frac", "<f4"),
    ]
    arr = np.zeros(2, dtype=dtype)
    arr["location/micrograph_path"] = [b"J1/motioncorrected/m1.mrc", b"J1/motioncorrected/m2.mrc"]
    arr["location/micrograph_shape"] = [[1000, 2000], [1000, 2000]]
    arr["location/center_x_frac"] = [0.5, 0.25]
    arr["location/center_y_frac"] = [0.25, 0.5]
    with open(tmp_path / "particles.cs", "wb") as fh:
        np.save(fh, arr)
    labels = read_labels(tmp_path / "particles.cs")
    assert labels["m1"].xy.tolist() == [[1000.0, 250.0]]
    assert labels["m2"].xy.tolist() == [[500.0, 500.0]]


def test_empty_label_files_give_zero_particles(tmp_path: Path) -> None:
    for name in ("e.box", "e2.csv", "e3.star"):
        (tmp_path / name).write_text("")
    assert len(read_labels(tmp_path / "e.box")["e"]) == 0
    assert len(read_labels(tmp_path / "e2.csv")["e2"]) == 0
    assert len(read_labels(tmp_path / "e3.star")["e3"]) == 0
    (tmp_path / "h.csv").write_text("X-Coordinate,Y-Coordinate,Diameter\n")
    assert len(read_labels(tmp_path / "h.csv")["h"]) == 0


def test_directory_of_label_files(tmp_path: Path) -> None:
    (tmp_path / "a.box").write_text("0 0 10 10\n")
    (tmp_path / "b.csv").write_text("X-Coordinate,Y-Coordinate,Diameter\n5,6,10\n")
    (tmp_path / "README.md").write_text("ignored")
    labels = read_labels(tmp_path)
    assert labels["a"].xy.tolist() == [[5.0, 5.0]] and labels["b"].xy.tolist() == [[5.0, 6.0]]
    assert list(read_labels(tmp_path, fmt="box")) == ["a"]
    (tmp_path / "a.csv").write_text("X-Coordinate,Y-Coordinate,Diameter\n5,6,10\n")
    with pytest.raises(InputError, match="'a' is labelled by both a.box and a.csv"):
        read_labels(tmp_path)


@pytest.mark.parametrize(
    ("name", "first_line", "expected"),
    [
        ("a.star", "data_", "star"),
        ("a_cryosparc.star", "data_", "cryosparc"),
        ("a.box", "1 2 3 4", "box"),
        ("a.json", "{}", "json"),
        ("a.csv", "X-Coordinate,Y-Coordinate,Diameter", "csv"),
        ("a.csv", "location/micrograph_path,location/center_x_frac,location/center_y_frac", "cryosparc"),
        ("a.txt", "image_name\tx_coord\ty_coord", "topaz"),
        ("a.tsv", "image_name x_coord y_coord score", "topaz"),
        ("a.txt", "12\t34\t100\t100", "box"),
        ("a.csv", "name,x,y", "csv"),
    ],
)
def test_guess_format(tmp_path: Path, name: str, first_line: str, expected: str) -> None:
    (tmp_path / name).write_text(first_line + "\n")
    assert guess_format(tmp_path / name) == expected


# ----------------------------------------------------------------------------- errors


def test_missing_and_unknown(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"gone\.star.*no such"):
        read_labels(tmp_path / "gone.star")
    (tmp_path / "p.xml").write_text("<x/>")
    with pytest.raises(InputError, match=r"p\.xml.*unknown label file type.*star"):
        read_labels(tmp_path / "p.xml")
    (tmp_path / "p.txt").write_text("hello world\n")
    with pytest.raises(InputError, match=r"p\.txt.*cannot tell the label format"):
        read_labels(tmp_path / "p.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="empty.*no label files"):
        read_labels(empty)
    with pytest.raises(InputError, match="unknown label format 'nope'"):
        read_labels(tmp_path / "p.txt", fmt="nope")


def test_star_errors(tmp_path: Path) -> None:
    bad = tmp_path / "cols.star"
    bad.write_text("data_\nloop_\n_rlnX #1\n_rlnY #2\n1 2\n")
    with pytest.raises(InputError, match=r"cols\.star.*no rlnCoordinateX/rlnCoordinateY columns \(found: rlnX, rlnY\)"):
        read_labels(bad)
    nan = tmp_path / "nan.star"
    nan.write_text("data_\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n1 2\nnan 4\n")
    with pytest.raises(InputError, match=r"nan\.star.*data row 2"):
        read_labels(nan)
    word = tmp_path / "word.star"
    word.write_text("data_\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n1 2\n3 four\n")
    with pytest.raises(InputError, match=r"word\.star.*data row 2.*'four'"):
        read_labels(word)
    short = tmp_path / "short.star"
    short.write_text("data_\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n_rlnMicrographName\n1 2 a.mrc\n3 b.mrc\n")
    with pytest.raises(InputError, match=r"short\.star"):
        read_labels(short)
    long = tmp_path / "long.star"
    long.write_text("data_\nloop_\n_rlnCoordinateX\n_rlnCoordinateY\n1 2\n3 4 5 6\n")
    with pytest.raises(InputError, match=r"long\.star.*one value per column"):
        read_labels(long)


def test_text_format_errors(tmp_path: Path) -> None:
    (tmp_path / "m.box").write_text("1 2 3 4\n1 2\n")
    with pytest.raises(InputError, match=r"m\.box line 2: expected 4 columns"):
        read_labels(tmp_path / "m.box")
    (tmp_path / "n.box").write_text("1 2 3 4\n1 x 3 4\n")
    with pytest.raises(InputError, match=r"n\.box line 2: value 'x' is not a number"):
        read_labels(tmp_path / "n.box")
    (tmp_path / "t.txt").write_text("image_name\tx_coord\ty_coord\na\t1\t2\nb\t3\n")
    with pytest.raises(InputError, match=r"t\.txt line 3: expected 3 columns"):
        read_labels(tmp_path / "t.txt")
    (tmp_path / "c.csv").write_text("X-Coordinate,Y-Coordinate,Diameter\n1,2,3\n4,NaN,3\n")
    with pytest.raises(InputError, match=r"c\.csv line 3: y-coordinate is 'NaN'"):
        read_labels(tmp_path / "c.csv")
    (tmp_path / "d.csv").write_text("a,b,c\n1,2,3\n")
    with pytest.raises(InputError, match=r"d\.csv.*no x/y coordinate columns"):
        read_labels(tmp_path / "d.csv", fmt="csv")
    (tmp_path / "j.json").write_text('{"a.png": [[1, 2], [3]]}')
    with pytest.raises(InputError, match=r"j\.json: 'a.png' entry 1"):
        read_labels(tmp_path / "j.json")
    (tmp_path / "k.json").write_text('{"a.png": [[1, 2]],\n "b": ')
    with pytest.raises(InputError, match=r"k\.json line 2: invalid JSON"):
        read_labels(tmp_path / "k.json")
    (tmp_path / "l.json").write_text('{"a.png": [[1, 2, 0.5], [3, 4]]}')
    with pytest.raises(InputError, match=r"l\.json.*mixes"):
        read_labels(tmp_path / "l.json")


# ----------------------------------------------------------------------------- validation


def test_validate_no_names_match() -> None:
    labels = {"a": Particles(np.array([[1.0, 2.0]]))}
    with pytest.raises(InputError, match=r"picks\.star: none of the 1 labelled.*labels: a; micrographs: b, c"):
        validate_labels(labels, {"b": (100, 100), "c": (100, 100)}, "picks.star")


def test_validate_outside_image() -> None:
    labels = {"m": Particles(np.array([[10.0, 20.0], [150.0, 20.0], [-3.0, 5.0]]))}
    with pytest.raises(InputError, match=r"picks\.star: 2 of 3 particles of micrograph 'm' lie outside.*pixel size"):
        validate_labels(labels, {"m": (100, 120)}, "picks.star")
    swapped = {"m": Particles(np.array([[10.0, 110.0]]))}
    with pytest.raises(InputError, match="swapped"):
        validate_labels(swapped, {"m": (50, 120)}, "picks.star")


def test_validate_warnings_and_deduplicate() -> None:
    labels = {
        "m": Particles(np.array([[10.0, 20.0], [10.2, 20.1], [50.0, 50.0], [10.4, 20.0]]), np.arange(4.0)),
        "extra": Particles(np.zeros((1, 2))),
    }
    warnings = validate_labels(labels, {"m": (100, 100), "n": (100, 100)}, "src")
    assert len(warnings) == 3
    assert any("1 labelled micrographs are not among the inputs" in w for w in warnings)
    assert any("1 micrographs have no labels" in w for w in warnings)
    assert any("2 duplicate particles" in w for w in warnings)
    kept = deduplicate(labels["m"])
    np.testing.assert_array_equal(kept.xy, [[10.0, 20.0], [50.0, 50.0]])
    np.testing.assert_array_equal(kept.scores, [0.0, 2.0])


def test_cryosparc_csv_export(tmp_path: Path) -> None:
    (tmp_path / "cs.csv").write_text(
        "location/micrograph_path,location/micrograph_shape,location/center_x_frac,location/center_y_frac\n"
        'J1/m1.mrc,"[1000, 2000]",0.5,0.25\n'
    )
    assert guess_format(tmp_path / "cs.csv") == "cryosparc"
    assert read_labels(tmp_path / "cs.csv")["m1"].xy.tolist() == [[1000.0, 250.0]]
    (tmp_path / "noshape.csv").write_text("location/center_x_frac,location/center_y_frac\n0.5,0.5\n")
    with pytest.raises(InputError, match=r"noshape\.csv.*micrograph_shape"):
        read_labels(tmp_path / "noshape.csv")


def test_star_note_is_a_comment_line_that_reads_back(tmp_path):
    import starfile

    from cryopick.io import Particles, read_labels, write_labels

    labels = {"m1": Particles(np.array([[1.5, 2.0], [10.0, 20.25]]), np.array([0.9, 0.4]))}
    for fmt in ("star", "cryosparc"):
        path = write_labels(labels, tmp_path / f"{fmt}.star", fmt, note="every candidate")[0]
        assert path.read_text().startswith("# every candidate\n")
        assert len(next(iter(starfile.read(path, always_dict=True).values()))) == 2
        back = read_labels(path)
        assert np.allclose(back["m1"].xy, labels["m1"].xy) and np.allclose(back["m1"].scores, [0.9, 0.4])
