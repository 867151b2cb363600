"""Tests for oppnda_nb.reports: every real report type, bad input, sniffing, summaries.

Expected row counts and values are computed independently from the files (plain Python
line splitting), or taken from FORMATS.md, or cross-checked between report types of the
same run (e.g. DistanceDelay delivered == MessageStats delivered).
"""
from __future__ import annotations

import builtins
import math
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_data import DATA as SHARED_DATA

from oppnda_nb.errors import OppndaError
from oppnda_nb.reports import (
    KIND_OF,
    KNOWN_REPORT_TYPES,
    Report,
    ReportError,
    Summary,
    detect_report_type,
    read_keyvalue,
    read_report,
    summarize_report,
)

DATA = SHARED_DATA
ONE = DATA / "one-reports"
ALL_TYPES = sorted((ONE / "all-types").glob("*.txt"))
LARGE_HEADS = sorted((ONE / "large-heads").glob("*.txt"))
REAL_FILES = ALL_TYPES + LARGE_HEADS
REF_STATS = sorted((DATA / "oppnda-reference" / "reports").glob("*_MessageStatsReport.txt"))

#: only the tests that read the real ONE corpora need them (synthetic-input tests never skip)
needs_shared = pytest.mark.skipif(not ALL_TYPES, reason="shared ONE report data not available")

# Written down here independently of the module (from the issue / FORMATS.md).
EXPECTED_KIND = {
    "MessageStatsReport": "keyvalue", "PingAppReporter": "keyvalue",
    "AdjacencyGraphvizReport": "graph", "MessageGraphvizReport": "graph",
    "BufferOccupancyReport": "timeseries", "MessageDeliveryReport": "timeseries",
    "TotalContactTimeReport": "timeseries", "ContactsPerHourReport": "timeseries",
    "MessageDelayReport": "timeseries",
    "ContactTimesReport": "histogram", "InterContactTimesReport": "histogram",
    "ContactsDuringAnICTReport": "histogram", "TotalEncountersReport": "histogram",
    "UniqueEncountersReport": "histogram", "JumpSizeDistributionReport": "histogram",
    "CreatedMessagesReport": "table", "DeliveredMessagesReport": "table", "DistanceDelayReport": "table",
    "EncountersVSUniqueEncountersReport": "table", "MessageReport": "table", "NodeDensityReport": "table",
    "RadiusOfGyrationReport": "table",
    "LocationSnapshotReport": "snapshot", "MessageCopyCountReport": "snapshot", "MessageLocationReport": "snapshot",
    "ConnectivityONEReport": "events", "ConnectivityDtnsim2Report": "events", "EventLogReport": "events",
    "MovementNs2Report": "events",
}

# column -> "num" (numeric, not bool), "int", "str" (string or category), "bool"
EXPECTED_COLUMNS = {
    "MessageStatsReport": {"metric": "str", "value": "num"},
    "PingAppReporter": {"metric": "str", "value": "num"},
    "AdjacencyGraphvizReport": {"host1": "str", "host2": "str", "weight": "int"},
    "MessageGraphvizReport": {"path": "str", "source": "str", "destination": "str", "hops": "int"},
    "BufferOccupancyReport": {"time": "num", "occupancy": "num", "variance": "num"},
    "ContactsPerHourReport": {"hour": "int", "contacts": "int"},
    "MessageDeliveryReport": {"time": "num", "created": "int", "delivered": "int", "delivered/created": "num"},
    "MessageDelayReport": {"messageDelay": "num", "cumulativeProbability": "num"},
    "TotalContactTimeReport": {"time": "num", "totalContactTime": "num"},
    "ContactTimesReport": {"duration": "num", "count": "int"},
    "InterContactTimesReport": {"duration": "num", "count": "int"},
    "ContactsDuringAnICTReport": {"contacts": "int", "count": "int"},
    "TotalEncountersReport": {"encounters": "int", "nodes": "int"},
    "UniqueEncountersReport": {"permille": "int", "nodes": "int"},
    "JumpSizeDistributionReport": {"bin_center": "num", "density": "num", "count": "int"},
    "CreatedMessagesReport": {"time": "num", "ID": "str", "size": "int", "fromHost": "str", "toHost": "str",
                              "TTL": "int", "isResponse": "bool"},
    "DeliveredMessagesReport": {"time": "num", "ID": "str", "size": "int", "hopcount": "int", "deliveryTime": "num",
                                "fromHost": "str", "toHost": "str", "remainingTtl": "int", "isResponse": "bool",
                                "path": "str"},
    "DistanceDelayReport": {"distance": "num", "delay": "num", "hops": "num", "ID": "str", "delivered": "bool"},
    "EncountersVSUniqueEncountersReport": {"node": "int", "encounters": "int", "unique_encounters": "int"},
    "MessageReport": {"ID": "str", "start_time": "num", "end_time": "num", "delay": "num", "duplicate": "bool"},
    "RadiusOfGyrationReport": {"node": "int", "host": "str", "center_x": "num", "center_y": "num", "radius": "num"},
    "LocationSnapshotReport": {"t": "num", "host": "str", "x": "num", "y": "num"},
    "MessageCopyCountReport": {"t": "num", "msg": "str", "copies": "int"},
    "MessageLocationReport": {"t": "num", "holder": "int", "x": "num", "y": "num", "msg": "str"},
    "ConnectivityONEReport": {"time": "num", "host1": "int", "host2": "int", "state": "str"},
    "ConnectivityDtnsim2Report": {"time": "num", "host1": "str", "host2": "str", "state": "str"},
    "EventLogReport": {"time": "num", "action": "str", "host1": "str", "host2": "str", "msg": "str", "extra": "str"},
    "MovementNs2Report": {"time": "num", "node": "int", "x": "num", "y": "num", "speed": "num"},
}

HISTOGRAMS = {"ContactTimesReport", "InterContactTimesReport", "ContactsDuringAnICTReport",
              "TotalEncountersReport", "UniqueEncountersReport", "JumpSizeDistributionReport"}
TIMESERIES = {"BufferOccupancyReport", "MessageDeliveryReport", "TotalContactTimeReport",
              "ContactsPerHourReport", "MessageDelayReport"}


def class_of(path: Path) -> str:
    return path.stem.rsplit("_", 1)[-1]


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


def expected_rows(path: Path) -> int:
    """Row count from plain line counting, per the format descriptions in FORMATS.md."""
    rt = class_of(path)
    lines = [ln for ln in lines_of(path) if ln.strip()]
    if rt in ("MessageStatsReport", "PingAppReporter"):
        return sum(":" in ln for ln in lines)
    if rt == "AdjacencyGraphvizReport":
        return sum("--" in ln for ln in lines)
    if rt == "MessageGraphvizReport":
        return sum(ln.startswith("\t") and "->" in ln for ln in lines)
    if rt in ("LocationSnapshotReport", "MessageCopyCountReport"):
        return sum(not ln.startswith("[") for ln in lines)
    if rt == "MessageLocationReport":
        return sum(len(ln.split()) - 1 for ln in lines if not ln.startswith("["))
    if rt == "MovementNs2Report":
        return sum("setdest" in ln for ln in lines)
    return sum(not ln.startswith("#") for ln in lines)


def reports_by_type() -> dict[str, Path]:
    return {class_of(p): p for p in REAL_FILES}


def _ok_dtype(s: pd.Series, want: str) -> bool:
    is_num = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
    if want == "num":
        return is_num
    if want == "int":
        return pd.api.types.is_integer_dtype(s)
    if want == "bool":
        return pd.api.types.is_bool_dtype(s)
    if want == "str":
        return (pd.api.types.is_string_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype)
                or s.dtype == object) and not is_num
    raise AssertionError(want)


# ------------------------------------------------------------------------------------------
# every real file


@needs_shared
def test_corpus_covers_every_known_type():
    assert {class_of(p) for p in REAL_FILES} == set(EXPECTED_KIND)
    assert set(KNOWN_REPORT_TYPES) == set(EXPECTED_KIND)
    assert KIND_OF == EXPECTED_KIND


@pytest.mark.parametrize("path", REAL_FILES, ids=class_of)
def test_real_file_type_kind_rows_dtypes(path: Path):
    rep = read_report(path)
    rt = class_of(path)
    assert rep.report_type == rt
    assert rep.kind == EXPECTED_KIND[rt]
    assert rep.meta["type_source"] == "filename"
    assert rep.meta["warnings"] == []
    assert len(rep.frame) == expected_rows(path)
    want = EXPECTED_COLUMNS.get(rt)
    if want is not None:
        assert list(rep.frame.columns) == list(want)
        for col, kind in want.items():
            assert _ok_dtype(rep.frame[col], kind), (col, rep.frame[col].dtype)
    assert detect_report_type(path) == rt


@pytest.mark.parametrize("path", ALL_TYPES, ids=class_of)
def test_sniffing_a_renamed_file(path: Path, tmp_path: Path):
    rt = class_of(path)
    renamed = tmp_path / "renamed.txt"
    shutil.copy(path, renamed)
    rep = read_report(renamed)
    assert rep.meta["type_source"] == "content"
    if rt == "InterContactTimesReport":
        # same format as ContactTimesReport: the ambiguity is reported, not hidden
        assert rep.report_type == "ContactTimesReport"
        assert any("InterContactTimesReport" in w for w in rep.meta["warnings"])
    else:
        assert rep.report_type == rt
        assert detect_report_type(renamed) == rt
    assert len(rep.frame) == expected_rows(path)


@pytest.mark.parametrize("path", LARGE_HEADS, ids=class_of)
def test_sniffing_large_heads(path: Path):
    assert detect_report_type("no_type_here.txt", head=path.read_bytes()[:65536]) == class_of(path)


def test_detect_name_only_does_no_io():
    assert detect_report_type("/nonexistent/TEST_X_1_60_2M_MessageStatsReport.txt") == "MessageStatsReport"
    assert detect_report_type("/nonexistent/whatever.txt", head=b"") == "unknown"
    assert detect_report_type("/nonexistent/whatever.txt") == "unknown"


@pytest.mark.parametrize("path", REAL_FILES, ids=class_of)
def test_summary_for_every_type(path: Path):
    rep = read_report(path)
    s = summarize_report(rep)
    assert isinstance(s, Summary)
    assert s.scalars and all(type(v) is float for v in s.scalars.values())
    assert all(isinstance(k, str) for k in s.scalars)
    assert not any(math.isinf(v) for v in s.scalars.values())
    rt = rep.report_type
    if rt in HISTOGRAMS:
        assert s.curve_kind == "histogram"
        assert list(s.curve.columns[:2]) == ["x", "y"] and len(s.curve) == len(rep.frame)
        assert s.scalars["total"] == pytest.approx(float(s.curve["y"].sum()))
    elif rt in TIMESERIES:
        assert s.curve_kind == "timeseries"
        assert list(s.curve.columns[:2]) == ["x", "y"] and len(s.curve) == len(rep.frame)
        assert (np.diff(s.curve["x"].to_numpy()) >= 0).all()
        assert s.scalars["final"] == s.curve["y"].iloc[-1]
    if s.curve is not None:
        assert all(s.curve[c].dtype == "float64" for c in s.curve.columns)
        assert np.isfinite(s.curve[["x", "y"]].to_numpy()).all()
    # cheap to pickle and equal after the round trip
    rep2, s2 = pickle.loads(pickle.dumps((rep, s)))
    pd.testing.assert_frame_equal(rep2.frame, rep.frame)
    assert list(s2.scalars) == list(s.scalars)


@pytest.mark.parametrize("rt", sorted({class_of(p) for p in (ONE / "sweep").glob("*.txt")}))
def test_summary_keys_line_up_across_runs(rt: str):
    files = sorted((ONE / "sweep").glob(f"*_{rt}.txt"))
    picks = [files[0], files[len(files) // 2], files[-1]]
    keys = [list(summarize_report(read_report(p)).scalars) for p in picks]
    assert keys[0] == keys[1] == keys[2]


# ------------------------------------------------------------------------------------------
# known values (FORMATS.md examples; contact/movement reports are identical for a seed)


@needs_shared
def test_keyvalue_messagestats_keys_order_and_nan():
    path = reports_by_type()["MessageStatsReport"]
    rep = read_report(path)
    assert rep.meta["scenario"] == "TEST_EpidemicRouter_1_180_10M"
    expected_keys = [ln.split(":", 1)[0] for ln in lines_of(path) if ":" in ln]
    assert list(rep.frame["metric"]) == expected_keys
    sc = summarize_report(rep).scalars
    assert list(sc) == expected_keys
    assert math.isnan(sc["rtt_avg"]) and math.isnan(sc["rtt_med"])
    assert sc["sim_time"] == 20000.1 and sc["created"] == 678.0
    for ln in lines_of(path)[1:]:
        k, v = ln.split(":", 1)
        if v.strip() != "NaN":
            assert sc[k] == float(v)


@needs_shared
def test_pingapp_keys_with_spaces_and_slash():
    rep = read_report(reports_by_type()["PingAppReporter"])
    sc = summarize_report(rep).scalars
    assert list(sc) == ["sim_time", "pings sent", "pings received", "pongs sent", "pongs received",
                        "ping delivery prob", "pong delivery prob", "ping/pong success prob"]
    assert rep.meta["scenario"] == "TEST_EpidemicRouter_1_180_10M"


def _oppnda_loop(path, sep=":", ignore=()):
    """An independent reference for OppNDA's documented key:value rules: on each stripped line that
    holds ``sep``, the key and value are the stripped text around its first occurrence; ignored keys
    are dropped; "nan" in any case is NaN; values ``float`` rejects are dropped; a later key wins."""
    out = {}
    for line in map(str.strip, Path(path).read_text().splitlines()):
        key, found, value = line.partition(sep)
        if not found:
            continue
        key, value = key.strip(), value.strip()
        if key in ignore:
            continue
        if value.lower() == "nan":
            out[key] = float("nan")
            continue
        try:
            out[key] = float(value)
        except ValueError:
            pass
    return out


def _same(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all((math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


def test_keyvalue_summaries_share_their_key_strings(tmp_path: Path):
    """Thousands of summaries held by the kernel share one string per key (interned)."""
    from oppnda_nb.reports import summarize_keyvalue

    summaries = []
    for i, sep in enumerate((":", " : ")):
        p = tmp_path / f"TEST_R_{i}_1_1_MessageStatsReport.txt"
        p.write_text("".join(f"delivery_prob{sep}{j}.5\n" for j in range(3)))
        summaries.append(summarize_keyvalue(str(p), None, sep, ()))
    (ka,), (kb,) = (s.scalars for s in summaries)
    assert ka == kb == "delivery_prob" and ka is kb
    assert summaries[0].scalars[ka] == summaries[1].scalars[kb] == 2.5


@pytest.mark.skipif(not REF_STATS, reason="OppNDA reference reports not available")
def test_keyvalue_exactly_oppnda_semantics_on_reference_files():
    for path in REF_STATS[::7]:
        ref = _oppnda_loop(path)
        assert _same(read_keyvalue(path), ref)
        assert _same(summarize_report(read_report(path)).scalars, ref)
        ref_ign = _oppnda_loop(path, ignore=("sim_time",))
        assert _same(read_keyvalue(path, ":", ignore_fields=("sim_time",)), ref_ign)


def test_keyvalue_edge_cases_match_oppnda(tmp_path: Path):
    p = tmp_path / "x_MessageStatsReport.txt"
    p.write_text("Message stats for scenario S1\n a : 1.5 \nb: nan\nc: 1e3\nd: x:y\ne: oops\na: 2\n"
                 "time: 12:30\nf:  -0.0000\n")
    ref = _oppnda_loop(p)
    assert _same(read_keyvalue(p), ref)
    rep = read_report(p)
    assert _same(summarize_report(rep).scalars, ref)
    assert any("unparsable" in w for w in rep.meta["warnings"])
    assert any("missing metrics" in w for w in rep.meta["warnings"])
    assert any("duplicate keys ['a']" in w for w in rep.meta["warnings"])


def _oppnda_text(text: str, sep: str, ignore=()) -> tuple[dict, list, list, list]:
    """OppNDA's line loop on a string, plus what the checks need: bad lines, lines without the
    separator, every key of a line that holds the separator."""
    data, bad, other = {}, [], []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if sep not in line:
            other.append(line)
            continue
        key, value = (x.strip() for x in line.split(sep, 1))
        if key in ignore:
            continue
        try:
            data[key] = float(value) if value.lower() != "nan" else float("nan")
        except ValueError:
            bad.append(line)
    return data, bad, other, [ln.split(sep, 1)[0].strip() for ln in lines if sep in ln]


@pytest.mark.parametrize("sep", [":", "::", "=", " : ", ": ", " ", "\t", "a"])
def test_keyvalue_parser_equals_oppnda_loop_on_random_text(sep):
    # the parser splits each raw line once (no strip first) when the separator has no blank at
    # its ends; random text with blanks, odd whitespace, NaN words and separators everywhere
    import random

    from oppnda_nb.reports.keyvalue import _parse_keyvalue

    rnd = random.Random(7)
    atoms = ["a", "b", ":", " ", "\t", "\r", "\n", "1", ".5", "nan", "NaN", "-", "e3", "x", "\r\n", "inf",
             "\u00a0", "\u2028", "\x0b", "\x1c", "_", "1_0", "::", " : ", "="]
    for _ in range(3000):
        text = "".join(rnd.choice(atoms) for _ in range(rnd.randint(0, 14)))
        got, want = _parse_keyvalue(text, sep, ("a",)), _oppnda_text(text, sep, ("a",))
        assert got[1:] == want[1:], repr(text)
        assert _same(got[0], want[0]), repr(text)


def test_separator_argument(tmp_path: Path):
    p = tmp_path / "run_MessageStatsReport.txt"
    p.write_text("Message stats for scenario S\ncreated= 5\ndelivery_prob = 0.5\n")
    sc = summarize_report(read_report(p, separator="=")).scalars
    assert sc == {"created": 5.0, "delivery_prob": 0.5}
    with pytest.raises(ReportError, match="no 'key: value' lines"):
        read_report(p)


@needs_shared
def test_eventlog_variable_fields():
    path = reports_by_type()["EventLogReport"]
    f = read_report(path).frame
    first = f.iloc[0]
    assert (first["time"], first["action"], first["host1"], first["host2"], first["extra"]) == (0.1, "CONN", "p30", "p19", "up")
    assert pd.isna(first["msg"])
    assert f["time"].iloc[8] == 0.30000000000000004
    lines = [ln.split() for ln in lines_of(path)]
    # independent check of every row against the raw tokens
    for i in (0, 8, *range(100, len(lines), 997)):
        tok = lines[i]
        row = f.iloc[i]
        act = tok[1]
        assert row["action"] == act and row["time"] == float(tok[0]) and row["host1"] == tok[2]
        if act == "CONN":
            assert (row["host2"], row["extra"]) == (tok[3], tok[4]) and pd.isna(row["msg"])
        elif act in ("C", "DR", "R"):
            assert row["msg"] == tok[3] and pd.isna(row["host2"]) and pd.isna(row["extra"])
        else:
            assert (row["host2"], row["msg"]) == (tok[3], tok[4])
            assert (row["extra"] == tok[5]) if act == "DE" else pd.isna(row["extra"])
    s = summarize_report(read_report(path)).scalars
    counts = {}
    for tok in lines:
        key = tok[1] if tok[1] != "CONN" else f"CONN_{tok[4]}"
        counts[key] = counts.get(key, 0) + 1
        if tok[1] == "DE":
            counts[f"DE_{tok[5]}"] = counts.get(f"DE_{tok[5]}", 0) + 1
    for key in ("C", "S", "DE", "A", "DR", "R", "DE_R", "DE_D", "DE_A", "CONN_up", "CONN_down"):
        assert s[key] == counts.get(key, 0), key


@needs_shared
def test_connectivity_and_adjacency_agree():
    by = reports_by_type()
    one = read_report(by["ConnectivityONEReport"]).frame
    dtn = read_report(by["ConnectivityDtnsim2Report"]).frame
    assert tuple(one.iloc[0]) == (0.10, 19, 30, "up")
    assert (dtn.iloc[0]["time"], dtn.iloc[0]["host1"], dtn.iloc[0]["host2"]) == (0.10, "p19", "p30")
    assert (one["time"].to_numpy() == dtn["time"].to_numpy()).all()
    s1 = summarize_report(read_report(by["ConnectivityONEReport"])).scalars
    s2 = summarize_report(read_report(by["ConnectivityDtnsim2Report"])).scalars
    assert s1 == s2
    adj = summarize_report(read_report(by["AdjacencyGraphvizReport"])).scalars
    # each connection-up event adds 1 to an edge weight; the contact histogram counts finished contacts
    assert adj["total_weight"] == s1["up"]
    assert adj["edges"] == s1["pairs"]
    ct = summarize_report(read_report(by["ContactTimesReport"])).scalars
    assert ct["total"] == s1["contacts"]


@needs_shared
def test_message_reports_agree_with_messagestats():
    by = reports_by_type()
    stats = summarize_report(read_report(by["MessageStatsReport"])).scalars
    dd = summarize_report(read_report(by["DistanceDelayReport"])).scalars
    dl = summarize_report(read_report(by["DeliveredMessagesReport"])).scalars
    md = summarize_report(read_report(by["MessageDelayReport"])).scalars
    mr = summarize_report(read_report(by["MessageReport"])).scalars
    mg = summarize_report(read_report(by["MessageGraphvizReport"])).scalars
    cr = summarize_report(read_report(by["CreatedMessagesReport"])).scalars
    mv = summarize_report(read_report(by["MessageDeliveryReport"])).scalars
    n = stats["delivered"]
    assert dd["delivered"] == dl["delivered"] == md["delivered"] == mr["delivered"] == mg["paths"] == mv["delivered"] == n
    assert dd["messages"] == cr["created"] == mv["created"] == stats["created"]
    assert round(dd["delivery_prob"], 4) == stats["delivery_prob"] == md["final"]
    for s in (dd, dl, md, mr):
        assert s["delay_mean"] == pytest.approx(stats["latency_avg"], abs=1e-3)
    assert dl["hopcount_mean"] == pytest.approx(stats["hopcount_avg"], abs=1e-3)
    assert dl["path_consistent_frac"] == 1.0


@needs_shared
def test_distance_delay_sentinels():
    path = reports_by_type()["DistanceDelayReport"]
    rep = read_report(path)
    f = rep.frame
    raw = [ln.split() for ln in lines_of(path) if not ln.startswith("#")]
    undelivered = [t[3] for t in raw if t[1] == "-1.0000" and t[2] == "-1"]
    assert len(undelivered) > 0
    assert sorted(f.loc[~f["delivered"], "ID"]) == sorted(undelivered)
    assert f.loc[~f["delivered"], ["delay", "hops"]].isna().all().all()
    assert f.loc[f["delivered"], ["delay", "hops"]].notna().all().all()
    assert tuple(f.iloc[0][["distance", "delay", "hops", "ID"]]) == (143.5114, 131.8, 1.0, "M29")
    assert rep.meta["scenario"] == "TEST_EpidemicRouter_1_180_10M"


@needs_shared
def test_table_values_and_trailing_spaces():
    by = reports_by_type()
    cr = read_report(by["CreatedMessagesReport"]).frame
    assert tuple(cr.iloc[0]) == (32.0, "M1", 618834, "c42", "c46", 180, False)
    dl = read_report(by["DeliveredMessagesReport"]).frame
    assert dl.iloc[0]["path"] == "w94->w97" and dl.iloc[0]["deliveryTime"] == 131.8
    js = read_report(by["JumpSizeDistributionReport"]).frame
    assert js["density"].iloc[6] == 2.923658493164419e-4 and js["count"].iloc[6] == 205
    nd = read_report(by["NodeDensityReport"])
    assert nd.frame.shape == (100, 3 + len(lines_of(by["NodeDensityReport"])[0].split()) - 3)
    assert nd.frame["average"].iloc[1] == 0.46846846846846846
    rg = read_report(by["RadiusOfGyrationReport"]).frame
    assert tuple(rg.iloc[0]) == (0, "p0", 2151.7866404399265, 1360.6370608141176, 1119.3018137189292)
    ct = read_report(by["ContactTimesReport"]).frame
    assert tuple(ct.iloc[0]) == (0.0, 490) and ct["count"].iloc[-1] == 0
    mg = read_report(by["MessageGraphvizReport"])
    assert mg.meta["delivered_messages"] == len(mg.frame) and mg.meta["sim_time"] == 20000.099999989452
    assert tuple(mg.frame.iloc[0]) == ("w94->w97", "w94", "w97", 1)


@pytest.mark.parametrize("rt,col,idx", [
    ("BufferOccupancyReport", 1, None), ("JumpSizeDistributionReport", 1, None),
    ("RadiusOfGyrationReport", 4, None), ("TotalContactTimeReport", 1, None),
    ("EventLogReport", 0, None), ("LocationSnapshotReport", 1, None),
])
@needs_shared
def test_floats_identical_to_python_float(rt, col, idx):
    path = reports_by_type()[rt]
    rep = read_report(path)
    toks = [ln.split() for ln in lines_of(path) if ln.strip() and not ln.startswith(("#", "["))]
    want = np.array([float(t[col]) for t in toks])
    got = rep.frame.iloc[:, col if rt != "LocationSnapshotReport" else 2].to_numpy()
    assert (want == got).all()


@needs_shared
def test_snapshot_reports():
    by = reports_by_type()
    ls = read_report(by["LocationSnapshotReport"]).frame
    assert tuple(ls.iloc[0]) == (10.0, "p0", 1607.6188, 1624.8235)
    marks = [ln for ln in lines_of(by["LocationSnapshotReport"]) if ln.startswith("[")]
    assert ls["t"].nunique() == len(marks) and ls["t"].iloc[-1] == float(marks[-1].strip("[]"))
    cc = read_report(by["MessageCopyCountReport"]).frame
    assert tuple(cc.iloc[0]) == (60.0, "M1", 1) and tuple(cc.iloc[1]) == (60.0, "M10", 2)
    ml = read_report(by["MessageLocationReport"]).frame
    head = ml.iloc[:4]
    assert list(head["msg"]) == ["M30", "M28", "M1", "M4"]
    assert list(head["holder"]) == [0, 1, 1, 1]
    assert (head["t"] == 300.0).all()
    assert tuple(head.iloc[1][["x", "y"]]) == (1831.85, 493.87)
    holders = [ln for ln in lines_of(by["MessageLocationReport"]) if ln.startswith("(")]
    assert ml.groupby("t")["holder"].nunique().sum() == len(holders)
    s = summarize_report(read_report(by["MessageCopyCountReport"]))
    assert s.curve_kind == "timeseries" and len(s.curve) == s.scalars["snapshots"]


@needs_shared
def test_movement_ns2():
    path = reports_by_type()["MovementNs2Report"]
    rep = read_report(path)
    first = [ln for ln in lines_of(path) if "setdest" in ln][0]
    # $ns_ at <t> "\$node_(i) setdest x y speed"
    tok = first.replace('"', " ").split()
    row = rep.frame.iloc[0]
    assert row["time"] == float(tok[2]) and row["node"] == int(tok[3].split("(")[1].rstrip(")"))
    assert (row["x"], row["y"], row["speed"]) == (float(tok[5]), float(tok[6]), float(tok[7]))
    assert rep.frame["time"].min() < 0  # warm-up movement is logged before t=0
    pos = rep.meta["initial_positions"]
    assert len(pos) == 126
    assert tuple(pos.iloc[0][["node", "x", "y"]]) == (0, 857.44448, 2174.60132)


@needs_shared
def test_histogram_summary_values():
    by = reports_by_type()
    f = read_report(by["TotalEncountersReport"]).frame
    s = summarize_report(read_report(by["TotalEncountersReport"])).scalars
    pairs = [tuple(map(int, ln.split())) for ln in lines_of(by["TotalEncountersReport"])]
    total = sum(c for _, c in pairs)
    assert s["total"] == total == 126
    assert s["mean"] == pytest.approx(sum(k * c for k, c in pairs) / total)
    # TotalEncounters mean == mean of EncountersVSUnique's per-node totals (same run)
    ev = summarize_report(read_report(by["EncountersVSUniqueEncountersReport"])).scalars
    assert s["mean"] == pytest.approx(ev["encounters_mean"])
    assert len(f) == len(pairs)


# ------------------------------------------------------------------------------------------
# special and bad input


def test_message_delay_no_messages(tmp_path: Path):
    p = tmp_path / "TEST_FirstContactRouter_1_60_2M_MessageDelayReport.txt"
    p.write_text("# no messages delivered in sim time 20000.1000\n")
    rep = read_report(p)
    assert rep.kind == "timeseries" and len(rep.frame) == 0
    assert list(rep.frame.columns) == ["messageDelay", "cumulativeProbability"]
    assert rep.meta["no_messages_delivered"] is True and rep.meta["sim_time"] == 20000.1
    s = summarize_report(rep)
    assert s.scalars["delivered"] == 0.0 and s.scalars["final"] == 0.0 and math.isnan(s.scalars["delay_mean"])
    assert s.curve_kind == "timeseries" and (s.curve["y"] == 0).all()
    # sniffed too
    q = tmp_path / "noname.txt"
    shutil.copy(p, q)
    assert read_report(q).report_type == "MessageDelayReport"


def test_message_report_duplicate_flag(tmp_path: Path):
    p = tmp_path / "r_MessageReport.txt"
    p.write_text("# messages: ID, start time, end time\nM1 10.0000 20.0000\nM1 10.0000 30.0000 duplicate\n")
    f = read_report(p).frame
    assert list(f["duplicate"]) == [False, True] and list(f["delay"]) == [10.0, 20.0]
    s = summarize_report(read_report(p)).scalars
    assert s["delivered"] == 1.0 and s["duplicates"] == 1.0


def _err(path, **kw) -> ReportError:
    with pytest.raises(ReportError) as ei:
        read_report(path, **kw)
    e = ei.value
    assert isinstance(e, OppndaError)
    assert e.path == str(path) and str(e) == f"{path}: {e.reason}"
    return e


def test_empty_and_whitespace(tmp_path: Path):
    p = tmp_path / "a_MessageStatsReport.txt"
    p.write_bytes(b"")
    assert "empty file" in _err(p).reason
    p.write_bytes(b"  \n\n")
    assert "whitespace" in _err(p).reason


def test_binary_garbage(tmp_path: Path):
    p = tmp_path / "a_ContactTimesReport.txt"
    p.write_bytes(bytes(range(256)) * 4)
    assert "NUL" in _err(p).reason
    rng = np.random.default_rng(0)
    noise = bytes(b for b in rng.integers(1, 256, 4000, dtype=np.uint8).tobytes() if b)
    p.write_bytes(noise + b"\n")
    assert "UTF-8" in _err(p).reason


def test_wrong_encoding(tmp_path: Path):
    p = tmp_path / "a_CreatedMessagesReport.txt"
    p.write_bytes("# time  ID  size  fromHost  toHost  TTL  isResponse\n32.0000 M1 618834 caf\u00e9 c46 300 N \n"
                  .encode("latin-1"))
    e = _err(p)
    assert "UTF-8" in e.reason and "0xe9" in e.reason


@needs_shared
def test_truncated_last_line_keeps_complete_rows(tmp_path: Path):
    src = reports_by_type()["CreatedMessagesReport"]
    data = src.read_bytes()
    cut = data[: len(data) - 20]  # mid-line
    p = tmp_path / src.name
    p.write_bytes(cut)
    rep = read_report(p)
    complete = cut[: cut.rfind(b"\n") + 1].count(b"\n") - 1
    assert len(rep.frame) == complete
    assert any("truncated" in w for w in rep.meta["warnings"])
    # key:value: a cut "delivered: 16" of "delivered: 161" must not be used: the file fails, saying so
    ms = reports_by_type()["MessageStatsReport"].read_bytes()
    q = tmp_path / "x_MessageStatsReport.txt"
    q.write_bytes(ms[: ms.index(b"delivered: ") + len(b"delivered: 2")])
    assert "truncated" in _err(q).reason and "'delivered: 2'" in _err(q).reason
    with pytest.raises(ReportError, match="truncated"):
        read_keyvalue(q)
    # nothing usable
    q.write_bytes(b"Message stats for sce")
    assert "truncated" in _err(q).reason


def test_missing_file_and_directory(tmp_path: Path):
    assert "not found" in _err(tmp_path / "gone_MessageStatsReport.txt").reason
    d = tmp_path / "dir_MessageStatsReport.txt"
    d.mkdir()
    assert "directory" in _err(d).reason


@needs_shared
def test_permission_denied(tmp_path: Path, monkeypatch):
    p = tmp_path / "locked_MessageStatsReport.txt"
    shutil.copy(reports_by_type()["MessageStatsReport"], p)
    if os.name == "posix" and os.geteuid() != 0:
        p.chmod(0)
        try:
            assert "permission denied" in _err(p).reason
        finally:
            p.chmod(0o644)
    real_open = builtins.open

    def fake_open(file, *a, **k):
        if str(file) == str(p):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **k)

    real_os_open = os.open

    def fake_os_open(file, *a, **k):   # (key:value reports are read through the file descriptor)
        if str(file) == str(p):
            raise PermissionError(13, "Permission denied", str(file))
        return real_os_open(file, *a, **k)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    assert "permission denied" in _err(p).reason


def test_garbage_messagestats(tmp_path: Path):
    p = tmp_path / "x_MessageStatsReport.txt"
    p.write_text("hello world\nthis is not\na stats file\n")
    assert "not a MessageStatsReport" in _err(p).reason
    p.write_text("a: b\nc: d\n")
    assert "no 'key: value' lines with a number" in _err(p).reason


@pytest.mark.parametrize("rt,body,needle", [
    ("ContactTimesReport", "0.0 490\n1.0 abc\n", "not numeric"),
    ("ContactTimesReport", "0.0 490\n1.0 5 7\n", "Expected 2 fields"),
    ("ContactTimesReport", "0.0 490 7\n1.0 5\n", "more fields"),
    ("BufferOccupancyReport", "5.1 0.0 0.0\n10.2 0.0\n", "too few fields"),
    ("CreatedMessagesReport", "# time  ID  size  fromHost  toHost  TTL  isResponse\n1.0 M1 5 a b 60 X \n", "Y or N"),
    ("EventLogReport", "0.1 CONN a b up\n0.2 C a\n", "fields, expected 4"),
    ("EventLogReport", "0.1 CONN a b up\n0.2 ZZ a b\n", "action must be one of"),
    ("ConnectivityONEReport", "0.10 CONN 1 2 sideways\n", "state must be one of"),
    ("LocationSnapshotReport", "p0 1 2\n", "'[time]' line first"),
    ("MessageLocationReport", "[300]\n(1.0,zz) M1\n", "bad coordinate"),
    ("AdjacencyGraphvizReport", "c1--c2 [weight=1];\n", "Graphviz"),
    ("MovementNs2Report", "hello there world again\n", "setdest"),
    ("MovementNs2Report", "$node_(0) set X_ 1.0\n$node_(0) sat Y_ 2.0\n", "neither"),
    ("MessageDeliveryReport", "# time  created  delivered  delivered/created\nfoo bar baz qux\n", "not numeric"),
])
def test_unexpected_shape(tmp_path: Path, rt, body, needle):
    p = tmp_path / f"TEST_R_1_60_2M_{rt}.txt"
    p.write_text(body)
    e = _err(p)
    assert needle in e.reason, e.reason


@needs_shared
def test_wrong_name_hints_at_sniffed_type(tmp_path: Path):
    p = tmp_path / "TEST_R_1_60_2M_ContactTimesReport.txt"
    shutil.copy(reports_by_type()["EventLogReport"], p)
    e = _err(p)
    assert "looks like a EventLogReport" in e.reason or "EventLogReport" in e.reason
    assert read_report(p, report_type="EventLogReport").report_type == "EventLogReport"


def test_bad_report_type_argument(tmp_path: Path):
    p = tmp_path / "a.txt"
    p.write_text("x 1\n")
    assert "unknown report_type" in _err(p, report_type="NoSuchReport").reason


def test_report_error_pickles():
    e = ReportError("/x/y.txt", "broken")
    e2 = pickle.loads(pickle.dumps(e))
    assert (e2.path, e2.reason, str(e2)) == ("/x/y.txt", "broken", "/x/y.txt: broken")


# ------------------------------------------------------------------------------------------
# unknown types


def test_unknown_keyvalue_generic(tmp_path: Path):
    p = tmp_path / "TEST_X_1_60_2M_MyCustomReport.txt"
    p.write_text("My custom stats\nalpha: 1.5\nbeta gamma: NaN\nbad: x\n")
    rep = read_report(p)
    assert (rep.report_type, rep.kind) == ("unknown", "generic")
    assert "unknown report type" in rep.meta["note"]
    s = summarize_report(rep).scalars
    assert list(s) == ["alpha", "beta gamma"] and s["alpha"] == 1.5 and math.isnan(s["beta gamma"])


def test_unknown_table_generic(tmp_path: Path):
    p = tmp_path / "TEST_X_1_60_2M_OtherReport.txt"
    p.write_text("# when  count  label\n1.0 3 a\n2.0 5 b\n3.5 7\n")
    rep = read_report(p)
    assert (rep.report_type, rep.kind) == ("unknown", "generic")
    assert list(rep.frame.columns) == ["when", "count", "label"] and len(rep.frame) == 3
    s = summarize_report(rep).scalars
    assert s["rows"] == 3.0 and s["count_mean"] == 5.0 and s["when_median"] == 2.0


@needs_shared
def test_summarize_accepts_a_path():
    s = summarize_report(str(reports_by_type()["ContactsPerHourReport"]))
    vals = [int(ln.split("\t")[1]) for ln in lines_of(reports_by_type()["ContactsPerHourReport"])]
    assert s.scalars["total"] == sum(vals) and s.scalars["mean"] == pytest.approx(np.mean(vals))
    assert list(s.curve["y"]) == vals


# ------------------------------------------------------------------------------------------
# robustness: arbitrary input gives a Report or a ReportError, nothing else

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ALPHABET = st.sampled_from(list("0123456789.-+eE MCDRSAN[](),:;@<>$_\"\\#{}\t\nxyzpcwt") +
                            ["CONN", " up", " down", "->", "--", "NaN", "\n[10]\n", "setdest", "\r\n"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rt=st.sampled_from(list(EXPECTED_KIND) + ["SomethingElse"]),
       body=st.one_of(st.binary(max_size=300), st.lists(_ALPHABET, max_size=80).map("".join).map(str.encode)))
def test_fuzz_only_report_error(tmp_path: Path, rt: str, body: bytes):
    p = tmp_path / f"TEST_R_1_60_2M_{rt}.txt"
    p.write_bytes(body)
    try:
        rep = read_report(p)
    except ReportError as e:
        assert e.reason
        return
    assert isinstance(rep, Report) and isinstance(rep.frame, pd.DataFrame)
    s = summarize_report(rep)
    assert all(type(v) is float for v in s.scalars.values())


@pytest.mark.parametrize("rt", ["MessageStatsReport", "CreatedMessagesReport", "AdjacencyGraphvizReport",
                                "MessageLocationReport", "EventLogReport", "MessageGraphvizReport"])
@needs_shared
def test_crlf_line_endings(tmp_path: Path, rt: str):
    src = reports_by_type()[rt]
    p = tmp_path / src.name
    p.write_bytes(src.read_bytes().replace(b"\n", b"\r\n"))
    a, b = read_report(src), read_report(p)
    pd.testing.assert_frame_equal(a.frame, b.frame, check_categorical=False)


def test_curve_types_are_the_types_whose_summary_carries_a_frame():
    """What the plan's pandas timing stands on (job.plan with local_pool=True): only these types' summaries
    hold a DataFrame, whose unpickling imports pandas in the kernel."""
    from oppnda_nb.averaging import sample_folder
    from oppnda_nb.reports import CURVE_TYPES
    from oppnda_nb.reports.api import summarize_path

    assert CURVE_TYPES <= set(KNOWN_REPORT_TYPES)
    files = REAL_FILES or sorted(sample_folder().glob("*_EpidemicRouter_1_*_10M_*.txt"))
    seen = {}
    for path in files:
        kind = detect_report_type(str(path))
        seen[kind] = summarize_path(str(path)).curve is not None
    assert {k for k, has in seen.items() if has} == CURVE_TYPES & set(seen)
    if REAL_FILES:  # every type once (all-types and the large run's heads)
        assert set(seen) == set(KNOWN_REPORT_TYPES)


@pytest.mark.parametrize("body,ignore", [
    ("Message stats for scenario S\na: 1\nb: 2\n", ()),
    ("Message stats for scenario S\nsim_time: 1\na: 1\nsim_time: 2\n", ("sim_time",)),   # an ignored key twice
    ("Message stats for scenario S\na: 1\na: x\n", ()),                                   # good, then bad value
    ("Message stats for scenario S\na: x\na: 1\n", ()),
    ("Message stats for scenario S\na: 1\nsim_time: 3\na: 2\n", ("sim_time",)),
    ("Message stats for scenario S\nMessage stats for scenario S\na: 1\n", ()),        # the title twice
    ("title one\ntitle two\na: 1\n", ()),
    ("Message stats for scenario S\r\na: 1\r\na: 2\r\n", ()),                           # CRLF: the general path
    ("a: 1\n\n  \nb:\x1f2\x1f\n", ("zz",)),
])
def test_keyvalue_checks_match_the_general_path(tmp_path: Path, body: str, ignore):
    """The one-pass reader of key:value reports gives the metrics, warnings and meta that the
    general line parser (_parse_keyvalue) and its checks give."""
    from oppnda_nb.reports import keyvalue as kv

    p = tmp_path / "x_MessageStatsReport.txt"
    p.write_bytes(body.encode())
    metrics, warns, meta = kv.keyvalue_summary(p, ":", ignore, "MessageStatsReport")
    ref, bad, other, keys = kv._parse_keyvalue(body.replace("\r\n", "\n"), ":", ignore)
    assert _same(metrics, ref)
    assert any("duplicate keys" in w for w in warns) == (len(keys) != len(set(keys)))
    assert any("unparsable value" in w for w in warns) == bool(bad)
    titled = [ln for ln in other if ln.startswith("Message stats for scenario")]
    assert meta.get("title") == (titled[0] if titled else None)
    assert any("without ':' ignored" in w for w in warns) == any(ln != meta.get("title") for ln in other)
    assert _same(kv.summarize_keyvalue(p, ignore_fields=ignore).scalars, ref)
