"""summarize_path (streamed, bounded memory) gives the same Summary as summarize_report(read_report()),
for every streamed type, on synthetic files (never skipped) and the shared real files; plus the
registry, gzip input, cut key:value files and bounded error reasons."""
from __future__ import annotations

import gzip
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_data import DATA

from oppnda_nb.reports import (KIND_OF, KNOWN_REPORT_TYPES, REGISTRY, ReportError, Summary, detect_report_type,
                               keyvalue_summary, memory_priors, read_keyvalue, read_report, report_type_from_name,
                               summarize_path, summarize_report)
from oppnda_nb.reports import folds

STREAMED = sorted(n for n, s in REGISTRY.items() if s.stream is not None)
REAL = sorted((DATA / "one-reports" / "all-types").glob("*.txt")) + sorted((DATA / "one-reports" / "large-heads").glob("*.txt"))
REAL_STREAMED = [p for p in REAL if report_type_from_name(p) in STREAMED]


def assert_same(a: Summary, b: Summary) -> None:
    assert list(a.scalars) == list(b.scalars)
    for k, x in a.scalars.items():
        y = b.scalars[k]
        assert (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12), (k, x, y)
    assert a.curve_kind == b.curve_kind
    if a.curve is None:
        assert b.curve is None
    else:
        pd.testing.assert_frame_equal(a.curve.reset_index(drop=True), b.curve.reset_index(drop=True),
                                      check_exact=False, rtol=1e-12)


def whole(path) -> Summary:
    return summarize_report(read_report(path))


# Synthetic files: small, with repeated and distinct values, NaN/n/a, duplicates, several snapshots.
def _synthetic(rt: str, rng: np.random.Generator, n: int = 60) -> str:
    t = np.round(np.sort(rng.uniform(0, 5000, n)), 1)
    if rt == "DeliveredMessagesReport":
        rows = ["# time  ID  size  hopcount  deliveryTime  fromHost  toHost  remainingTtl  isResponse  path"]
        for i in range(n):
            h = int(rng.integers(1, 5))
            path = "->".join(f"n{int(x)}" for x in rng.integers(0, 50, h + 1 - (i % 7 == 0)))
            ttl = "n/a" if i % 11 == 0 else str(int(rng.integers(1, 300)))
            rows.append(f"{t[i]:.4f} M{i} {int(rng.integers(100, 120))} {h} {rng.uniform(0, 900):.4f} a{i % 5} b{i % 3} "
                        f"{ttl} {'Y' if i % 9 == 0 else 'N'} {path}")
    elif rt == "CreatedMessagesReport":
        rows = ["# time  ID  size  fromHost  toHost  TTL  isResponse"]
        rows += [f"{t[i]:.4f} M{i} {int(rng.integers(10, 20))} c{i % 4} d{i % 6} {'n/a' if i % 13 == 0 else 240} "
                 f"{'Y' if i % 5 == 0 else 'N'} " for i in range(n)]
    elif rt == "DistanceDelayReport":
        rows = ["# Scenario S", "# distance at msg send, delivery time, hop count, MSG_ID"]
        rows += [(f"{rng.uniform(0, 3000):.4f} -1 -1 M{i}" if i % 4 == 0 else
                  f"{rng.uniform(0, 3000):.4f} {rng.uniform(0, 900):.4f} {int(rng.integers(1, 6))} M{i}") for i in range(n)]
    elif rt == "MessageReport":
        rows = ["# messages: ID, start time, end time"]
        rows += [f"M{i % 40} {t[i]:.4f} {t[i] + rng.uniform(0, 99):.4f}" + (" duplicate" if i >= 40 else "") for i in range(n)]
    elif rt == "EventLogReport":
        kinds = ["{t} CONN h{a} h{b} up", "{t} CONN h{a} h{b} down", "{t} C h{a} M{m}", "{t} S h{a} h{b} M{m}",
                 "{t} DE h{a} h{b} M{m} {x}", "{t} A h{a} h{b} M{m}", "{t} DR h{a} M{m}", "{t} R h{a} M{m}"]
        rows = [kinds[int(rng.integers(0, 8))].format(t=t[i], a=int(rng.integers(0, 9)), b=int(rng.integers(0, 9)),
                                                      m=int(rng.integers(0, 20)), x="RDA"[i % 3]) for i in range(n)]
    elif rt == "ConnectivityONEReport":
        rows, open_ = [], set()
        for i in range(n):
            a, b = sorted(int(x) for x in rng.choice(6, 2, replace=False))
            a, b = (b, a) if i % 2 else (a, b)
            key = (min(a, b), max(a, b))
            st = "down" if key in open_ and i % 3 else "up"
            open_.symmetric_difference_update({key}) if st == "down" or key not in open_ else None
            rows.append(f"{t[i]:.2f} CONN {a} {b} {st}")
    elif rt == "MovementNs2Report":
        rows = [f"$node_({k}) set {ax}_ {rng.uniform(0, 100):.5f}" for k in range(3) for ax in "XYZ"]
        rows += [f'$ns_ at {t[i]:.1f} "$node_({i % 7}) setdest {rng.uniform(0, 99):.5f} {rng.uniform(0, 99):.5f} '
                 f'{[1.0, 2.5, rng.uniform(0, 9)][i % 3]:.5f}"' for i in range(n)]
    elif rt == "LocationSnapshotReport":
        rows = []
        for k in range(n // 6):
            rows.append(f"[{10 * (k + 1)}]")
            rows += [f"p{h} {rng.uniform(0, 99):.4f} {rng.uniform(0, 99):.4f}" for h in range(5 + k % 2)]
    elif rt == "MessageCopyCountReport":
        rows = []
        for k in range(n // 6):
            rows.append(f"[{60 * (k + 1)}]")
            rows += [f"M{m} {int(rng.integers(1, 9))}" for m in range(k % 4, k % 4 + 5)]
    elif rt == "MessageLocationReport":
        rows = []
        for k in range(n // 6):
            rows.append(f"[{300 * (k + 1)}]")
            for h in range(4):
                msgs = " ".join(f"M{int(m)}" for m in rng.integers(0, 12, int(rng.integers(0, 4))))
                rows.append(f"({rng.uniform(0, 99):.2f},{rng.uniform(0, 99):.2f}) {msgs}".rstrip())
    else:
        raise AssertionError(rt)
    return "\n".join(rows) + "\n"


def test_every_streamed_type_has_a_synthetic_case():
    assert set(STREAMED) >= {"EventLogReport", "DeliveredMessagesReport", "MessageLocationReport",
                             "MessageCopyCountReport", "ConnectivityONEReport", "MovementNs2Report",
                             "LocationSnapshotReport", "CreatedMessagesReport", "DistanceDelayReport", "MessageReport"}


@pytest.mark.parametrize("rt", STREAMED)
@pytest.mark.parametrize("chunk", [1, 23, 200, 1 << 20])
def test_streamed_equals_whole_synthetic(tmp_path: Path, rt: str, chunk: int):
    p = tmp_path / f"TEST_R_1_60_2M_{rt}.txt"
    p.write_text(_synthetic(rt, np.random.default_rng(len(rt) + chunk)))
    s = summarize_path(p, chunk_bytes=chunk)
    assert_same(whole(p), s)
    assert s.warnings == []
    assert_same(whole(p), summarize_path(p, lean=True))


@pytest.mark.parametrize("rt", STREAMED)
def test_streamed_equals_whole_with_value_arrays(tmp_path: Path, rt: str, monkeypatch):
    """The array mode of the exact columns (values that rarely repeat) gives the same statistics."""
    monkeypatch.setattr(folds, "MIN_DISTINCT", 0)
    p = tmp_path / f"x_{rt}.txt"
    p.write_text(_synthetic(rt, np.random.default_rng(7), n=90))
    assert_same(whole(p), summarize_path(p, chunk_bytes=97))


@pytest.mark.parametrize("rt", STREAMED)
def test_streamed_header_only_and_truncated(tmp_path: Path, rt: str):
    text = _synthetic(rt, np.random.default_rng(3))
    p = tmp_path / f"x_{rt}.txt"
    lines = text.splitlines(keepends=True)
    head = "".join(ln for ln in lines[:2] if ln.startswith("#"))
    if head:
        p.write_text(head)
        assert_same(whole(p), summarize_path(p, chunk_bytes=5))
    p.write_text(text[:-7])          # cut mid-line: the incomplete line is dropped with a warning
    s = summarize_path(p, chunk_bytes=50)
    assert_same(whole(p), s)
    assert any("truncated" in w for w in s.warnings)


@pytest.mark.parametrize("rt", STREAMED)
def test_streamed_bad_input_is_a_report_error(tmp_path: Path, rt: str):
    p = tmp_path / f"x_{rt}.txt"
    p.write_bytes(b"")
    with pytest.raises(ReportError, match="empty file"):
        summarize_path(p, chunk_bytes=10)
    p.write_bytes(b" \n\n  \n")
    with pytest.raises(ReportError, match="whitespace"):
        summarize_path(p, chunk_bytes=2)
    good = _synthetic(rt, np.random.default_rng(5)).encode()
    p.write_bytes(good + b"\x00garbage\n")
    with pytest.raises(ReportError, match="NUL"):
        summarize_path(p, chunk_bytes=64)
    p.write_bytes(good + b"zz \xe9t\xe9 1 2 3\n")
    with pytest.raises(ReportError, match="UTF-8"):
        summarize_path(p, chunk_bytes=64)
    p.write_bytes(good + b"[zz]\n")
    with pytest.raises(ReportError):
        read_report(p)
    with pytest.raises(ReportError):
        summarize_path(p, chunk_bytes=64)


@pytest.mark.parametrize("rt", ["DeliveredMessagesReport", "MessageLocationReport", "EventLogReport"])
def test_gzip_is_read_directly(tmp_path: Path, rt: str):
    text = _synthetic(rt, np.random.default_rng(11)).encode()
    plain = tmp_path / f"TEST_R_1_60_2M_{rt}.txt"
    plain.write_bytes(text)
    gz = tmp_path / f"TEST_R_1_60_2M_{rt}.txt.gz"
    gz.write_bytes(gzip.compress(text))
    assert report_type_from_name(gz) == rt and detect_report_type(gz) == rt
    pd.testing.assert_frame_equal(read_report(gz).frame, read_report(plain).frame)
    assert_same(whole(plain), summarize_path(gz))
    assert_same(whole(plain), summarize_path(gz, chunk_bytes=100))
    anon = tmp_path / "anonymous.gz"
    shutil.copy(gz, anon)
    assert detect_report_type(anon) == rt
    bad = tmp_path / f"x_{rt}.txt.gz"
    bad.write_bytes(gzip.compress(text)[:-20])
    with pytest.raises(ReportError, match="gzip"):
        summarize_path(bad, chunk_bytes=100)


def test_gzip_keyvalue(tmp_path: Path):
    body = b"Message stats for scenario S\ncreated: 5\ndelivery_prob: 0.5\n"
    p = tmp_path / "TEST_R_1_60_2M_MessageStatsReport.txt.gz"
    p.write_bytes(gzip.compress(body))
    assert read_keyvalue(p) == {"created": 5.0, "delivery_prob": 0.5}
    assert summarize_path(p).scalars == {"created": 5.0, "delivery_prob": 0.5}


def test_report_type_from_name():
    assert report_type_from_name("/a/TEST_Epidemic_1_60_2M_EventLogReport.txt") == "EventLogReport"
    assert report_type_from_name("TEST_Epidemic_1_60_2M_eventlogreport.txt.gz") == "EventLogReport"
    assert report_type_from_name("x_MessageStatsReport") == "MessageStatsReport"
    assert report_type_from_name("x_NoSuchReport.txt") is None
    assert report_type_from_name("plain.txt") is None


def test_registry_is_the_one_table():
    assert set(REGISTRY) == set(KNOWN_REPORT_TYPES) == set(KIND_OF)
    pri = memory_priors()
    assert set(pri) == set(REGISTRY) | {"generic"}
    for name, spec in REGISTRY.items():
        assert spec.name == name and spec.kind == KIND_OF[name]
        gamma, over, chunk, ramp = pri[name]
        assert gamma == spec.gamma > 0 and over == spec.overhead_mb > 0
        assert (chunk, ramp) == (spec.chunk_mb, spec.ramp) and (ramp is None or ramp > 0)


def test_keyvalue_cut_and_non_numbers(tmp_path: Path):
    p = tmp_path / "x_MessageStatsReport.txt"
    p.write_bytes(b"Message stats for scenario S\ncreated: 12abc\ndelivered: 3\ndelivery_prob: 0.1")
    for fn in (read_report, summarize_path, read_keyvalue):
        with pytest.raises(ReportError, match="truncated") as ei:
            fn(p)
        assert "delivery_prob: 0.1" in ei.value.reason
    p.write_bytes(b"Message stats for scenario S\ncreated: 12abc\ndelivered: 3\ndelivery_prob: 0.1\n")
    s = summarize_path(p)
    assert s.scalars == {"delivered": 3.0, "delivery_prob": 0.1}
    assert any("'created'" in w and "12abc" in w for w in s.warnings)
    assert s.warnings == summarize_report(read_report(p)).warnings
    m, warns, _ = keyvalue_summary(p)
    assert m == s.scalars and warns == s.warnings
    assert read_keyvalue(p) == {"delivered": 3.0, "delivery_prob": 0.1}      # OppNDA: skipped silently
    p.write_bytes(b"Message stats for scenario S\ncreated: 5\n   ")           # trailing blanks: not cut
    assert summarize_path(p).scalars == {"created": 5.0}


def test_summarize_path_ignore_fields(tmp_path: Path):
    p = tmp_path / "x_MessageStatsReport.txt"
    p.write_text("Message stats for scenario S\nsim_time: 5\ncreated: 2\n")
    assert summarize_path(p, ignore_fields=("sim_time",)).scalars == {"created": 2.0}
    q = tmp_path / "x_DeliveredMessagesReport.txt"
    q.write_text(_synthetic("DeliveredMessagesReport", np.random.default_rng(1)))
    s = summarize_path(q, ignore_fields=("delay_p90",), chunk_bytes=300)
    assert "delay_p90" not in s.scalars and "delay_mean" in s.scalars


def test_reasons_are_bounded(tmp_path: Path):
    p = tmp_path / "x_ContactTimesReport.txt"
    p.write_text("0.0 " + "9" * 5000 + "x\n")
    e = pytest.raises(ReportError, read_report, p).value
    assert len(e.reason) <= 300
    q = tmp_path / "x_MessageStatsReport.txt"
    q.write_text("k" * 4000 + ": x\n")
    e = pytest.raises(ReportError, read_report, q).value
    assert len(e.reason) <= 300 and "cut" in e.reason
    assert len(ReportError("p", "y" * 1000).reason) == 300


@pytest.mark.skipif(not REAL_STREAMED, reason="shared ONE report data not available")
@pytest.mark.parametrize("path", REAL_STREAMED, ids=lambda p: p.parent.name + "/" + p.stem.rsplit("_", 1)[-1])
def test_streamed_equals_whole_real(path: Path):
    w = whole(path)
    for chunk in (4096, 100_000):
        assert_same(w, summarize_path(path, chunk_bytes=chunk))


# The fast paths (numpy on the bytes, only the fields a fold needs) and their fallback to the parser.
from oppnda_nb.reports import fastpath, stream_tables  # noqa: E402
from oppnda_nb.reports.base import _Src  # noqa: E402

FAST = {"EventLogReport": stream_tables._fast_eventlog, "DeliveredMessagesReport": stream_tables._fast_delivered,
        "CreatedMessagesReport": stream_tables._fast_created}


@pytest.mark.parametrize("rt", sorted(FAST))
def test_fast_path_takes_clean_blocks(rt: str):
    data = _synthetic(rt, np.random.default_rng(2)).encode()
    assert FAST[rt](_Src("x", data, rt, ":", [])) is not None


def _odd(rt: str, how: str) -> bytes:
    lines = _synthetic(rt, np.random.default_rng(9)).encode().splitlines(keepends=True)
    k = len(lines) // 2
    if how == "blank":
        lines.insert(k, b"\n")
    elif how == "crlf":
        lines = [ln.replace(b"\n", b"\r\n") for ln in lines]
    elif how == "truncated":
        lines[-1] = lines[-1][:-4]
    elif how == "tab":
        lines[k] = lines[k].replace(b" ", b"\t", 1)
    elif how == "double":
        lines[k] = lines[k].replace(b" ", b"  ", 1)
    elif how == "long_time":
        first = lines[k].split(b" ", 1)
        lines[k] = first[0] + b"0000000000013 " + first[1]
    elif how == "bad_number":
        first = lines[k].split(b" ", 1)
        lines[k] = b"1x5 " + first[1]
    elif how == "nan_field":
        parts = lines[k].split(b" ")
        parts[2] = b"nan"
        lines[k] = b" ".join(parts)
    elif how == "nan_time":
        lines[k] = b"NaN " + lines[k].split(b" ", 1)[1]
    return b"".join(lines)


@pytest.mark.parametrize("rt", sorted(FAST))
@pytest.mark.parametrize("how", ["blank", "crlf", "truncated", "tab", "double", "long_time", "bad_number",
                                 "nan_field", "nan_time"])
def test_fast_path_odd_input_equals_whole(tmp_path: Path, rt: str, how: str):
    p = tmp_path / f"x_{rt}.txt"
    p.write_bytes(_odd(rt, how))
    try:
        w = whole(p)
    except ReportError:
        for chunk in (64, 1 << 20):
            with pytest.raises(ReportError):
                summarize_path(p, chunk_bytes=chunk)
        return
    for chunk in (64, 1 << 20):
        assert_same(w, summarize_path(p, chunk_bytes=chunk))


def test_decimals_are_exact():
    toks = [b"0.1", b"12", b"-3.25", b"1189.4000000000137", b"-1189.200000000014", b"123456789012345678", b".5",
            b"5.", b"0043200.1000", b"9007199254740993"]
    data = b" ".join(toks) + b"\n"
    buf = np.frombuffer(data, np.uint8)
    s = np.cumsum([0] + [len(t) + 1 for t in toks[:-1]])
    e = s + np.array([len(t) for t in toks])
    assert fastpath.decimals(buf, s, e).tolist() == [float(t) for t in toks]
    pos = [i for i, t in enumerate(toks) if not t.startswith(b"-") and len(t.split(b".")[0]) <= 15]  # unsigned, short integer part
    assert fastpath.decimal_max(buf, s[pos], e[pos]) == max(float(toks[i]) for i in pos)
    assert fastpath.decimal_max(buf, s[[0, 5]], e[[0, 5]]) is None                         # 18-digit integer part
    for bad in (b"1e5", b"1.2.3", b"+1", b"-", b".", b"1_0", b"inf"):
        b2 = np.frombuffer(bad + b"\n", np.uint8)
        assert fastpath.decimals(b2, np.array([0]), np.array([len(bad)])) is None
        assert fastpath.decimal_max(b2, np.array([0]), np.array([len(bad)])) is None
