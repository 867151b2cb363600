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


# --------------------------------------------------------------------------------------------
# One-scan fast paths of the line tables (fastpath.scan / numbers / extremes; the Connectivity and
# MovementNs2 folds): bit-for-bit equal to the parser path, on clean and odd input.
import multiprocessing  # noqa: E402

from oppnda_nb.reports import streaming  # noqa: E402

LINE_TABLES = ["EventLogReport", "DeliveredMessagesReport", "CreatedMessagesReport", "ConnectivityONEReport",
               "MovementNs2Report"]
_FAST_FNS = {"EventLogReport": "_fast_eventlog", "DeliveredMessagesReport": "_fast_delivered",
             "CreatedMessagesReport": "_fast_created", "ConnectivityONEReport": "_fast_connectivity",
             "MovementNs2Report": "_fast_ns2"}


def assert_bits(a: Summary, b: Summary) -> None:
    """Same keys and the same float64 bits (NaN = NaN), the same curves and warnings."""
    assert list(a.scalars) == list(b.scalars)
    bits = lambda d: [np.float64(v).view(np.int64) if not math.isnan(v) else "nan" for v in d.values()]  # noqa: E731
    assert bits(a.scalars) == bits(b.scalars), (a.scalars, b.scalars)
    assert (a.curve is None) == (b.curve is None)
    if a.curve is not None:
        pd.testing.assert_frame_equal(a.curve, b.curve, check_exact=True)
    assert a.warnings == b.warnings


def parser_path(path, monkeypatch, chunk: int) -> Summary:
    """The streamed summary with every fast path off (each block read by the parser, as before the
    fast paths) and Connectivity folded by the string-keyed fold."""
    with monkeypatch.context() as mp:
        for fn in _FAST_FNS.values():
            mp.setattr(stream_tables, fn, lambda *a, **k: None)
        spec = REGISTRY["ConnectivityONEReport"].stream
        make = spec.make
        object.__setattr__(spec, "make", stream_tables._ConnectivityStrings)
        try:
            return summarize_path(path, chunk_bytes=chunk)
        finally:
            object.__setattr__(spec, "make", make)


def _odd2(rt: str, how: str, seed: int = 9) -> bytes:
    text = _synthetic(rt, np.random.default_rng(seed), n=120).encode()
    lines = text.splitlines(keepends=True)
    k = len(lines) // 2
    data_at = [i for i, ln in enumerate(lines) if not ln.startswith((b"#", b"$node_"))]
    if how == "clean":
        pass
    elif how == "blank_lines":
        lines.insert(k, b"\n")
        lines.insert(k + 5, b"   \n")
    elif how == "crlf":
        lines = [ln.replace(b"\n", b"\r\n") for ln in lines]
    elif how == "crlf_one":
        lines[k] = lines[k].replace(b"\n", b"\r\n")
    elif how == "tabs":
        lines[k] = lines[k].replace(b" ", b"\t")
    elif how == "trailing_blank":
        lines[k] = lines[k].replace(b"\n", b" \n")
    elif how == "all_trailing_blanks":
        lines = [ln.replace(b"\n", b" \n") for ln in lines]
    elif how == "truncated":
        lines[-1] = lines[-1][:-3]
    elif how in ("nan", "NaN", "n/a"):
        for i in data_at[3::17]:
            parts = lines[i].split(b" ")
            parts[min(2, len(parts) - 1)] = how.encode() + (b"\n" if parts[min(2, len(parts) - 1)].endswith(b"\n") else b"")
            lines[i] = b" ".join(parts)
    elif how == "java_times":             # 17 significant digits, as Java prints doubles
        for j, i in enumerate(data_at):
            parts = lines[i].split(b" ")
            t = 1189.4000000000137 + j * 0.30000000000000004
            pos = 2 if rt == "MovementNs2Report" else 0
            parts[pos] = repr(t).encode()
            lines[i] = b" ".join(parts)
    elif how == "negative_times":
        for i in data_at[::3]:
            parts = lines[i].split(b" ")
            pos = 2 if rt == "MovementNs2Report" else 0
            parts[pos] = b"-" + parts[pos]
            lines[i] = b" ".join(parts)
    elif how == "bad_time":
        parts = lines[data_at[len(data_at) // 2]].split(b" ")
        parts[2 if rt == "MovementNs2Report" else 0] = b"1e5"
        lines[data_at[len(data_at) // 2]] = b" ".join(parts)
    elif how == "big_hosts":              # Connectivity: hosts past the numeric keys (string fold from there)
        lines = [ln.replace(b" 3 ", b" 1234567 ") for ln in lines]
    elif how == "named_hosts":
        lines = lines[:k] + [ln.replace(b" 4 ", b" h4 ") for ln in lines[k:]]
    elif how == "leading_zero":
        lines[k] = lines[k].replace(b" 2 ", b" 02 ").replace(b"(2)", b"(02)")
    else:
        raise AssertionError(how)
    return b"".join(lines)


ODD2 = ["clean", "blank_lines", "crlf", "crlf_one", "tabs", "trailing_blank", "all_trailing_blanks", "truncated",
        "nan", "NaN", "n/a", "java_times", "negative_times", "bad_time", "big_hosts", "named_hosts", "leading_zero"]


@pytest.mark.parametrize("rt", LINE_TABLES)
@pytest.mark.parametrize("how", ODD2)
def test_line_table_fast_paths_equal_the_parser_bit_for_bit(tmp_path: Path, rt: str, how: str, monkeypatch):
    """Where the whole frame is an error, a block's parser may still read it (a trailing blank on a
    block's first line: pandas drops it); the fast paths then do exactly what the parser path does."""
    p = tmp_path / f"x_{rt}.txt"
    p.write_bytes(_odd2(rt, how))
    try:
        w = whole(p)
    except ReportError:
        w = None
    for chunk in (23, 97, 300, 1 << 20):          # tiny blocks (about one line each) up to one block
        try:
            ref = parser_path(p, monkeypatch, chunk)
        except ReportError as exc:
            with pytest.raises(ReportError) as got:
                summarize_path(p, chunk_bytes=chunk)
            assert got.value.reason == exc.reason
            continue
        s = summarize_path(p, chunk_bytes=chunk)
        assert_bits(ref, s)
        if w is not None:
            assert_same(w, s)
    if w is None:
        with pytest.raises(ReportError):
            summarize_path(p, chunk_bytes=1 << 20)


@pytest.mark.parametrize("rt", LINE_TABLES)
def test_line_table_fast_path_is_taken_on_clean_blocks(rt: str):
    data = _synthetic(rt, np.random.default_rng(2)).encode()
    if rt == "MovementNs2Report":
        assert stream_tables._fast_ns2(data[data.find(b"$ns_"):]) is not None
    else:
        assert getattr(stream_tables, _FAST_FNS[rt])(_Src("x", data, rt, ":", [])) is not None


def test_ns2_fast_path_reads_one_escaped_node_form():
    line = b'$ns_ at 1189.4000000000137 "\\$node_(81) setdest 1757.03621 332.07297 0.826165233459003"\n'
    c = stream_tables._fast_ns2(line * 3)
    assert c is not None and c["node"].tolist() == [81] * 3 and c["speed"][0] == 0.826165233459003
    assert c["time"].tolist() == [1189.4000000000137] * 2
    mixed = line + line.replace(b"\\$", b"$")
    assert stream_tables._fast_ns2(mixed) is None        # two forms in one block: the parser reads it


def test_connectivity_string_fold_takes_over_with_the_same_state(tmp_path: Path, monkeypatch):
    """Numeric keys for the first blocks, then hosts past them (large, negative): the open contacts, counts and
    pairs move to the string-keyed fold; the result equals the whole frame and the string fold."""
    rows = []
    for i in range(400):
        a, b = (i * 7) % 23, (i * 11) % 19 + 30
        rows.append(f"{i * 0.5:.2f} CONN {a} {b} {'up' if (i // 19) % 2 == 0 else 'down'}")
    big = lambda i: 1234567 + i % 3 if i % 3 == 0 else -(i % 5) if i % 5 == 1 else i % 23  # noqa: E731
    rows += [f"{200 + i:.2f} CONN {big(i)} {(i * 11) % 19 + 30} {'down' if i % 4 else 'up'}" for i in range(100)]
    p = tmp_path / "x_ConnectivityONEReport.txt"
    p.write_text("\n".join(rows) + "\n")
    w = whole(p)
    for chunk in (64, 4000, 1 << 20):
        s = summarize_path(p, chunk_bytes=chunk)
        assert_same(w, s)
        assert_bits(parser_path(p, monkeypatch, chunk), s)


def test_host_keys_sort_as_strings():
    v = np.array([0, 1, 2, 9, 10, 19, 100, 190, 1000, 99999, 12, 120, 1200])
    keys = stream_tables._host_keys(v)
    assert [str(x) for x in v[np.argsort(keys)]] == sorted(str(x) for x in v)
    assert [stream_tables._host_str(int(k)) for k in keys] == [str(x) for x in v]
    assert stream_tables._host_keys(np.array([100000])) is None and stream_tables._host_keys(np.array([-1])) is None


def _tokens(rng: np.random.Generator, n: int, max_digits: int = 21) -> list[bytes]:
    out = []
    for _ in range(n):
        digs = "".join(rng.choice(list("0123456789"), int(rng.integers(1, max_digits + 1))))
        r = rng.random()
        t = digs if r < 0.3 else (lambda p: digs[:p] + "." + digs[p:])(int(rng.integers(0, len(digs) + 1)))
        out.append(("-" + t if rng.random() < 0.3 else t).encode())
    return out


def _buf(toks: list[bytes]):
    data = b" ".join(toks) + b"\n"
    s = np.cumsum([0] + [len(t) + 1 for t in toks[:-1]])
    return np.frombuffer(data, np.uint8), s, s + np.array([len(t) for t in toks])


@pytest.mark.parametrize("seed", range(6))
def test_numbers_and_extremes_equal_float_bit_for_bit(seed: int):
    rng = np.random.default_rng(seed)
    toks = _tokens(rng, 3000) + [b"0.1", b"-0", b".5", b"5.", b"1189.4000000000137", b"9007199254740993",
                                 b"-924.6999999999829", b"0.826165233459003", b"8.803980654158522", b"00012.50"]
    toks += [repr(float(x)).encode() for x in rng.uniform(-1e4, 1e4, 2000)]    # Java/Python shortest doubles
    toks += [str(2 ** 53 + 2 * k + 1).encode() for k in range(30)]             # exactly between two doubles
    toks += [f"{2 ** 53 + 2 * k + 1}"[:-2].encode() + b"." + f"{2 ** 53 + 2 * k + 1}"[-2:].encode() for k in range(30)]
    buf, s, e = _buf(toks)
    exp = np.array([float(t) for t in toks])
    got = fastpath.numbers(buf, s, e)
    assert got.view(np.int64).tolist() == exp.view(np.int64).tolist()
    assert fastpath.plain_numbers(buf, s, e)
    for k in (1, 2, 50, len(toks)):
        part = slice(len(toks) - k, None)
        assert fastpath.extremes(buf, s[part], e[part]) == (exp[part].min(), exp[part].max())
    old = fastpath.decimals(buf, s, e)
    assert old.view(np.int64).tolist() == exp.view(np.int64).tolist()


@pytest.mark.parametrize("bad", [b"1e5", b"1.2.3", b"+1", b"-", b".", b"-.", b"1_0", b"inf", b"nan", b"1-2", b"--1",
                                 b"0x1", b"1,5", b"9" * 33])
def test_numbers_refuse_what_decimals_refuse(bad: bytes):
    buf, s, e = _buf([b"7", bad, b"2.5"])
    assert fastpath.numbers(buf, s, e) is None and fastpath.decimals(buf, s, e) is None
    assert fastpath.extremes(buf, s, e) is None and not fastpath.plain_numbers(buf, s, e)
    assert fastpath.decimal_max(buf, s, e) is None


@pytest.mark.parametrize("seed", range(4))
def test_decimal_max_equals_float_max(seed: int):
    rng = np.random.default_rng(seed)
    toks = [t.lstrip(b"-") for t in _tokens(rng, 500, max_digits=15)]
    toks = [t for t in toks if len(t.split(b".")[0]) <= 15]
    buf, s, e = _buf(toks)
    assert fastpath.decimal_max(buf, s, e) == max(float(t) for t in toks)
    nosep = np.frombuffer(b"".join(toks), np.uint8)      # tokens not followed by a separator
    s2 = np.cumsum([0] + [len(t) for t in toks[:-1]])
    assert fastpath.decimal_max(nosep, s2, s2 + np.array([len(t) for t in toks])) == max(float(t) for t in toks)


@pytest.mark.parametrize("body", [b"a b c\nd e f\n", b"a b c \nd e f \n", b"a b c \nd e f\n", b"a  b c\n", b" a b c\n",
                                  b"a b c\n\nd e f\n", b"a\tb c\n", b"a b c\r\n", b"a b c", b"", b"a nan c\n",
                                  b"nan b c\n", b"a n/a c\n", b"a nanx c\n", b"a b\n", b"a b c d\n"])
def test_scan_agrees_with_layout(body: bytes):
    for trailing_ok in (False, True):
        old = fastpath.layout(body, trailing_ok=trailing_ok)
        new = fastpath.scan(body, trailing_ok=trailing_ok)
        assert (old is None) == (new is None), (body, trailing_ok)
        if old is None:
            continue
        g_old, g_new = old.grid(2), new.grid(3)
        assert (g_old is None) == (g_new is None)
        if g_old is not None:
            for i in range(3):
                so, eo = old.field(g_old, i)
                sn, en = new.field(g_new, i)
                assert [bytes(old.buf[a:b]) for a, b in zip(so, eo)] == [bytes(new.buf[a:b]) for a, b in zip(sn, en)]


def _summary_in_child(path: str, chunk: int, q) -> None:
    s = summarize_path(path, chunk_bytes=chunk)
    q.put((s.scalars, s.warnings))


def test_worker_heap_reuse_gives_the_same_summary(tmp_path: Path):
    """In a child process the blocks reuse the heap (fastpath.reuse_heap): same summary as here."""
    p = tmp_path / "x_EventLogReport.txt"
    p.write_text(_synthetic("EventLogReport", np.random.default_rng(4), n=3000))
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(target=_summary_in_child, args=(str(p), 4096, q))
    proc.start()
    try:
        scalars, warns = q.get(timeout=120)
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()
    here = summarize_path(p, chunk_bytes=4096)
    assert_bits(Summary(scalars, warnings=warns), Summary(here.scalars, warnings=here.warnings))
    with fastpath.reuse_heap():                      # the main process: nothing changes, no error
        pass


def test_word_at_compares_up_to_eight_bytes_anywhere():
    data = b"CONN up\nCONNX down\nCON"
    buf = np.frombuffer(data, np.uint8)
    assert fastpath.word_at(buf, np.array([0, 8, 19]), b"CONN ").tolist() == [True, False, False]
    assert fastpath.word_at(buf, np.array([5, 14]), b"up\n").tolist() == [True, False]
    assert fastpath.word_at(buf, np.array([14, 19]), b"down\n").tolist() == [True, False]   # 19: past the end
    assert fastpath.word_at(buf, np.array([19]), b"CON").tolist() == [True]
    with pytest.raises(ValueError):
        fastpath.word_at(buf, np.array([0]), b"123456789")


# --------------------------------------------------------------------------------------------
# Faster byte readers of the line tables: ns-2 init lines further on, host keys and states read as
# words, '->' counted from the '>' bytes, the x87 tie check; each equal to the parser path bit for bit.


def test_ns2_init_lines_further_on_equal_the_parser(tmp_path: Path, monkeypatch):
    """Runs of '$node_' lines between moves (several runs' files joined): the moves are read fast
    around them, the init lines by the parser; bit for bit what the parser path gives."""
    rng = np.random.default_rng(5)
    parts = [_synthetic("MovementNs2Report", rng, n=40) for _ in range(3)]
    p = tmp_path / "x_MovementNs2Report.txt"
    p.write_text("".join(parts))
    data = p.read_bytes()
    assert data.count(b"\n$node_") >= 2
    assert stream_tables._fast_ns2_block(_Src("x", data, "MovementNs2Report", ":", []), REGISTRY["MovementNs2Report"].parse)
    w = whole(p)
    for chunk in (23, 97, 300, 1500, 1 << 20):
        s = summarize_path(p, chunk_bytes=chunk)
        assert_bits(parser_path(p, monkeypatch, chunk), s)
        assert_same(w, s)
    bad = data.replace(b"$node_(1) set Y_", b"$node_(1) set Y_ 5 6 7", 1)      # a bad init line further on
    p.write_bytes(bad)
    for chunk in (97, 1 << 20):
        with pytest.raises(ReportError) as got:
            summarize_path(p, chunk_bytes=chunk)
        with pytest.raises(ReportError) as ref:
            parser_path(p, monkeypatch, chunk)
        assert got.value.reason == ref.value.reason


def test_ns2_pieces_keep_the_file_order():
    data = b"$node_(0) set X_ 1\n$ns_ at 1 x\n$ns_ at 2 x\n$node_(1) set X_ 2\n$node_(1) set Y_ 2\n$ns_ at 3 x\n"
    moves, inits = stream_tables._ns2_pieces(data)
    assert moves == [b"$ns_ at 1 x\n$ns_ at 2 x\n", b"$ns_ at 3 x\n"]
    assert inits == [b"$node_(0) set X_ 1\n", b"$node_(1) set X_ 2\n$node_(1) set Y_ 2\n"]
    assert b"".join(sorted(moves + inits, key=data.index)) == data


def test_fast_host_keys_equal_host_keys():
    v = np.array([0, 1, 2, 9, 10, 19, 100, 190, 1000, 99999, 12, 120, 1200, 7, 54321])
    line = b"0.5 CONN " + b" ".join(str(x).encode() for x in v) + b" up\n"
    buf = np.frombuffer(line, np.uint8)
    s = np.array([9 + sum(len(str(x)) + 1 for x in v[:i]) for i in range(len(v))])
    e = s + np.array([len(str(x)) for x in v])
    assert stream_tables._fast_host_keys(buf, s, e).tolist() == stream_tables._host_keys(v).tolist()
    for bad in (b"02", b"123456", b"1a", b"-1", b"x"):
        ln = b"0.5 CONN 7 " + bad + b" up\n"
        b2 = np.frombuffer(ln, np.uint8)
        assert stream_tables._fast_host_keys(b2, np.array([9, 11]), np.array([10, 11 + len(bad)])) is None, bad
    assert stream_tables._fast_host_keys(buf, np.array([1]), np.array([2])) is None     # too near the start


def test_words_at_reads_zeros_past_the_end():
    buf = np.frombuffer(b"0.1 CONN 1 2 down\n", np.uint8)
    w = fastpath.words_at(buf, np.array([0, 4, 13, 17]))
    assert [int(x).to_bytes(8, "little") for x in w] == [b"0.1 CONN", b"CONN 1 2", b"down\n\0\0\0", b"\n" + b"\0" * 7]
    short = np.frombuffer(b"up\n", np.uint8)
    assert int(fastpath.words_at(short, np.array([0]))[0]).to_bytes(8, "little") == b"up\n" + b"\0" * 5


def test_delivered_arrows_only_in_the_path(tmp_path: Path, monkeypatch):
    """'->' in other fields and a lone '>' in a path: counted as the parser counts them (the path's '->')."""
    rows = ["# time  ID  size  hopcount  deliveryTime  fromHost  toHost  remainingTtl  isResponse  path"]
    for i in range(50):
        ident = f"M{i}->x" if i % 5 == 0 else f"M{i}"
        path = "a->b>c->d" if i % 7 == 0 else "->".join(f"n{k}" for k in range(i % 4 + 1))
        rows.append(f"{i:.4f} {ident} 100 {i % 4} {i * 2:.4f} a{i % 3}-> b> 200 N {path}")
    p = tmp_path / "x_DeliveredMessagesReport.txt"
    p.write_text("\n".join(rows) + "\n")
    assert stream_tables._fast_delivered(_Src("x", p.read_bytes(), "DeliveredMessagesReport", ":", [])) is not None
    w = whole(p)
    for chunk in (97, 1 << 20):
        s = summarize_path(p, chunk_bytes=chunk)
        assert_bits(parser_path(p, monkeypatch, chunk), s)
        assert_same(w, s)


@pytest.mark.skipif(not fastpath._X87, reason="the significand-bit check is for the x87 80-bit long double")
def test_x87_tie_check_equals_the_generic_one(monkeypatch):
    rng = np.random.default_rng(3)
    mant = np.concatenate([rng.integers(2 ** 53, 10 ** 17, 20000), 2 ** 53 + 2 * np.arange(200) + 1,
                           (2 ** 53 + 2 * np.arange(200) + 1) * 100])
    frac = np.concatenate([rng.integers(0, 23, 20000), np.zeros(200, np.int64), np.full(200, 2)])
    fast = fastpath._extended(mant, frac)
    monkeypatch.setattr(fastpath, "_X87", False)
    generic = fastpath._extended(mant, frac)
    assert fast[1].tolist() == generic[1].tolist() and fast[1][20000:20200].all()
    assert fast[0].view(np.int64).tolist() == generic[0].view(np.int64).tolist()


def test_ns2_plain_init_lines_are_checked_without_the_parser():
    ok = b"$node_(0) set X_ 857.44448\n$node_(0) set Y_ 2174.60132\n$node_(12) set Z_ 0\n"
    assert stream_tables._ns2_inits_plain(ok)
    parse = REGISTRY["MovementNs2Report"].parse
    assert len(parse(_Src("x", ok, "MovementNs2Report", ":", []))) == 0
    for bad in (b"$node_(0) set W_ 1\n", b"$node_(0) set X_ nan\n", b"$node_(x) set X_ 1\n", b"$node_() set X_ 1\n",
                b"$node_(0) sex X_ 1\n", b"$node_(0) set X_ 1 2\n", b"$node_(0) set X_ 1 \n", b"$node_(0 set X_ 1\n",
                b'$ns_ at 1.0 "$node_(0) setdest 1 2 3"\n', b"$node_(01) set X_ 1\n", b"$node_(0) set X_ 1e5\n"):
        assert not stream_tables._ns2_inits_plain(ok + bad), bad
