"""The snapshot reports' streamed folds (stream_snapshots.py) on their numpy fast paths give exactly
the whole-frame summaries (summaries.py): same keys, same floats, same curves; odd input (blank
lines, CRLF, tabs, nan words, 17-digit times, times going back, tiny blocks, ...) takes the exact
parser and gives the same result or the same kind of error. Synthetic cases never skip."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_data import ONE_REPORTS

from oppnda_nb.reports import ReportError, Summary, read_report, summarize_path, summarize_report
from oppnda_nb.reports import fastpath_snapshots as fs
from oppnda_nb.reports import stream_snapshots as ss
from oppnda_nb.reports.registry import REGISTRY
from oppnda_nb.reports.streaming import fold_blocks
from oppnda_nb.reports.tables import _Src
from oppnda_nb.reports.textio import iter_blocks

_BENCH = importlib.util.spec_from_file_location(        # the benchmark script (benchmarks/ is no installed package)
    "bench_worker_memory", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_worker_memory.py")
bench = importlib.util.module_from_spec(_BENCH)
_BENCH.loader.exec_module(bench)

TYPES = ["LocationSnapshotReport", "MessageCopyCountReport", "MessageLocationReport"]
# Means the streamed fold sums in another order than the whole frame (a last-bit difference at most).
SUMMED = {"LocationSnapshotReport": {"step_mean", "x_mean", "y_mean"}}
REAL = sorted(p for d in ("all-types", "large-heads") for p in (ONE_REPORTS / d).glob("*.txt")
              if any(p.stem.endswith(t) for t in TYPES))


def _type(p: Path) -> str:
    return next(t for t in TYPES if p.stem.endswith(t))


def assert_exact(rt: str, w: Summary, s: Summary, summed=None) -> None:
    """Same keys in the same order, equal floats (NaN = NaN), and curves equal to the bit."""
    summed = SUMMED.get(rt, set()) if summed is None else summed
    assert list(w.scalars) == list(s.scalars)
    for k, x in w.scalars.items():
        y = s.scalars[k]
        if k in summed:
            assert (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-13), (k, x, y)
        else:
            assert (math.isnan(x) and math.isnan(y)) or x == y, (k, x, y)
    assert w.curve_kind == s.curve_kind
    if w.curve is None:
        assert s.curve is None
    else:
        pd.testing.assert_frame_equal(w.curve.reset_index(drop=True), s.curve.reset_index(drop=True), check_exact=True)


def whole(p) -> Summary:
    return summarize_report(read_report(p))


@pytest.fixture
def no_fast(monkeypatch):
    """The folds without their fast paths (every block through the parser or the line loop)."""
    def off():
        monkeypatch.setattr(ss, "_each", lambda data, fast: None)
        monkeypatch.setattr(ss._MessageLocation, "_add_fast", lambda self, data: False)
    return off


# ---------------------------------------------------------------------------------------------
# synthetic files

def _synthetic(rt: str, seed: int = 0, snaps: int = 40) -> str:
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(snaps):
        t = 10 * (k + 1) if seed % 2 else round(float(rng.uniform(0, 1)) + 30 * k, 1)
        rows.append(f"[{t}]")
        if rt == "LocationSnapshotReport":
            for h in rng.permutation(12)[: 8 + k % 5]:
                rows.append(f"p{h} {rng.uniform(0, 3000):.4f} {rng.uniform(0, 3000):.{int(rng.integers(0, 5))}f}")
        elif rt == "MessageCopyCountReport":
            for m in range(k % 7, k % 7 + 9):
                rows.append(f"M{m} {int(rng.integers(1, 40))}")
        else:
            for h in range(6 + k % 3):
                msgs = " ".join(f"M{int(m)}" for m in rng.integers(0, 30, int(rng.integers(0, 5))))
                rows.append(f"({rng.uniform(0, 3000):.2f},{rng.uniform(0, 3000):.2f}) {msgs}".rstrip())
    return "\n".join(rows) + "\n"


CHUNKS = [1, 23, 64, 200, 4096, 1 << 20]


@pytest.mark.parametrize("rt", TYPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_synthetic_equals_whole(tmp_path: Path, rt: str, seed: int, monkeypatch):
    p = tmp_path / f"x_{rt}.txt"
    p.write_text(_synthetic(rt, seed))
    w = whole(p)
    for piece in (1 << 18, 300):                      # one piece per block, and many
        monkeypatch.setattr(ss, "PIECE", piece)
        for chunk in CHUNKS:
            assert_exact(rt, w, summarize_path(p, chunk_bytes=chunk))
    assert_exact(rt, w, summarize_path(p, lean=True))


@pytest.mark.parametrize("rt", TYPES)
def test_fast_path_equals_parser_path_bit_for_bit(tmp_path: Path, rt: str, no_fast, monkeypatch):
    """Every key, the summed means too, is the same float whichever way a block is read."""
    p = tmp_path / f"x_{rt}.txt"
    p.write_text(_synthetic(rt, 3, snaps=120))
    fast = {c: summarize_path(p, chunk_bytes=c) for c in (200, 4096, 1 << 20)}
    no_fast()
    for c, s in fast.items():
        assert_exact(rt, summarize_path(p, chunk_bytes=c), s, summed=set())


@pytest.mark.parametrize("rt", TYPES)
def test_fast_paths_take_clean_blocks(rt: str):
    data = _synthetic(rt, 0).encode()
    if rt == "MessageLocationReport":
        fold = ss._MessageLocation()
        assert fold._add_fast(data)
    else:
        fast = ss._location_fast if rt == "LocationSnapshotReport" else ss._copy_count_fast
        assert fast(data) is not None


def _odd(rt: str, how: str) -> bytes:
    lines = _synthetic(rt, 5).encode().splitlines(keepends=True)
    k = len(lines) // 2
    while lines[k].startswith(b"["):
        k += 1
    head, _, rest = lines[k].rstrip(b"\n").partition(b" ")
    if how == "blank":
        lines.insert(k, b"\n")
    elif how == "crlf":
        lines = [ln.replace(b"\n", b"\r\n") for ln in lines]
    elif how == "truncated":
        lines[-1] = lines[-1][:-3]
    elif how == "tab":
        lines[k] = lines[k].replace(b" ", b"\t", 1)
    elif how == "double":
        lines[k] = lines[k].replace(b" ", b"  ", 1)
    elif how == "trailing":
        lines[k] = lines[k].replace(b"\n", b" \n")
    elif how == "leading":
        lines[k] = b" " + lines[k]
    elif how == "nan_name":
        lines[k] = b"nan " + rest + b"\n" if rt != "MessageLocationReport" else head + b" M1 nan\n"
    elif how == "nan_value":
        lines[k] = head + b" NaN\n" if rt == "MessageCopyCountReport" else \
            (head + b" n/a 5\n" if rt == "LocationSnapshotReport" else b"(nan,4.5) M3\n")
    elif how == "long_time":
        lines[k - 1 if lines[k - 1].startswith(b"[") else 0] = b"[1189.4000000000137]\n"
    elif how == "long_value":
        lines[k] = head + (b" 7 1189.4000000000137\n" if rt == "LocationSnapshotReport" else
                           b" 12345678901\n" if rt == "MessageCopyCountReport" else b" M1\n")
        if rt == "MessageLocationReport":
            lines[k] = b"(1189.4000000000137,-0.5) M1 M2\n"
    elif how == "time_back":
        marks = [i for i, ln in enumerate(lines) if ln.startswith(b"[")]
        lines[marks[len(marks) // 2]] = b"[0.5]\n"
    elif how == "time_repeat":
        marks = [i for i, ln in enumerate(lines) if ln.startswith(b"[")]
        lines[marks[len(marks) // 2]] = lines[marks[len(marks) // 2 - 1]]
    elif how == "time_apart":
        marks = [i for i, ln in enumerate(lines) if ln.startswith(b"[")]
        lines[marks[len(marks) // 2]] = lines[marks[2]]
    elif how == "bad_marker":
        lines[0] = b"[ten]\n"
    elif how == "marker_sci":
        lines[0] = b"[1e1]\n"
    elif how == "long_name":
        lines[k] = b"a_very_long_name_9 " + rest + b"\n" if rt != "MessageLocationReport" else head + b" MSG_0000012345\n"
    elif how == "bracket_name":
        lines[k] = b"p[3 " + rest + b"\n" if rt != "MessageLocationReport" else head + b" M(3 M[4\n"
    elif how == "signs":
        lines[k] = head + (b" -0.0 .5\n" if rt == "LocationSnapshotReport" else b" 007\n" if rt == "MessageCopyCountReport"
                           else b"")
        if rt == "MessageLocationReport":
            lines[k] = b"(-0.0,.5) M1\n"
    elif how == "bad_number":
        lines[k] = head + (b" 1.2.3 4\n" if rt == "LocationSnapshotReport" else b" 2.5\n" if rt == "MessageCopyCountReport"
                           else b"")
        if rt == "MessageLocationReport":
            lines[k] = b"(1.2.3,4) M1\n"
    elif how == "empty_snapshots":
        lines.insert(k, b"[99999]\n[99999.5]\n")
    elif how == "few_fields":
        lines[k] = head + b"\n"
    elif how == "utf8":
        lines[k] = "h\u00e9 ".encode() + rest + b"\n" if rt != "MessageLocationReport" else head + " M\u00e9".encode() + b"\n"
    else:
        raise AssertionError(how)
    return b"".join(lines)


ODD = ["blank", "crlf", "truncated", "tab", "double", "trailing", "leading", "nan_name", "nan_value", "long_time",
       "long_value", "time_back", "time_repeat", "time_apart", "bad_marker", "marker_sci", "long_name",
       "bracket_name", "signs", "bad_number", "empty_snapshots", "few_fields", "utf8"]


@pytest.mark.parametrize("rt", TYPES)
@pytest.mark.parametrize("how", ODD)
def test_odd_input_equals_whole(tmp_path: Path, rt: str, how: str, monkeypatch):
    p = tmp_path / f"x_{rt}.txt"
    p.write_bytes(_odd(rt, how))
    try:
        w = whole(p)
    except ReportError:
        for chunk in (64, 4096, 1 << 20):
            with pytest.raises(ReportError):
                summarize_path(p, chunk_bytes=chunk)
        return
    for piece in (1 << 18, 300):
        monkeypatch.setattr(ss, "PIECE", piece)
        for chunk in (1, 64, 4096, 1 << 20):
            assert_exact(rt, w, summarize_path(p, chunk_bytes=chunk))


@pytest.mark.parametrize("rt", TYPES)
@pytest.mark.parametrize("how", ["blank", "crlf", "tab", "double", "leading", "nan_name", "long_time", "bad_marker",
                                 "long_name", "few_fields", "bad_number"])
def test_odd_blocks_leave_the_fast_path(rt: str, how: str):
    """Input the fast path does not read exactly is handed to the parser (None / False)."""
    lines = _odd(rt, how).splitlines(keepends=True)
    data = b"".join(lines[:-1]) if how == "truncated" else b"".join(lines)
    if rt == "MessageLocationReport":
        # a 17-digit marker (read exactly by fastpath.decimals) and a holder without messages are plain input
        assert ss._MessageLocation()._add_fast(data) == (how in ("long_time", "few_fields"))
    else:
        fast = ss._location_fast if rt == "LocationSnapshotReport" else ss._copy_count_fast
        if how == "long_time":     # read exactly by fastpath.decimals: the fast path keeps it, the value must match
            r = fast(data)
            assert r is not None and 1189.4000000000137 in set(r[0].tolist())
            return
        assert fast(data) is None


# ---------------------------------------------------------------------------------------------
# byte helpers

def _toks(words: list[bytes]) -> tuple[fs.Tokens, np.ndarray]:
    tk = fs.tokens(b"[1]\n" + b"x" * 20 + b"\n" + b" ".join(words) + b"\n")
    return tk, np.arange(2, 2 + len(words))


def test_decimals_are_exact():
    rng = np.random.default_rng(11)
    vals = [f"{x:.{k}f}" for x, k in zip(rng.uniform(-1e5, 1e5, 20000), rng.integers(0, 10, 20000))]
    vals += ["0.1", "12", "-3.25", "123456789012345", ".5", "5.", "0043200.1000", "-0.0", "-.5", "99999999", "7",
             "1607.6188", "12345678901234.5", "-123456789012.45", "1.23456789012345"]
    for near_start in (False, True):
        if near_start:
            tk = fs.tokens(b"[1]\n" + " ".join(vals[-15:]).encode() + b"\n")
            idx, want = np.arange(1, 16), vals[-15:]
        else:
            tk, idx = _toks([v.encode() for v in vals])
            want = vals
        got = fs.decimals(tk, tk.starts[idx], tk.ends[idx])
        assert got.tolist() == [float(v) for v in want]
        assert np.signbit(got).tolist() == [v.startswith("-") for v in want]
    for bad in [b"1a", b"1.0.", b":", b"/", b"1e5", b"1.2.3", b"-", b".", b"--1", b"1-", b"-.", b"+1", b"1,5", b"inf",
                b"1234567890123456", b"0x1"]:
        tk, idx = _toks([b"1.5", bad])
        assert fs.decimals(tk, tk.starts[idx], tk.ends[idx]) is None, bad


@pytest.mark.parametrize("f", [0, 1, 4, 7])
def test_decimals_with_a_fixed_fraction_are_exact(f: int):
    """Tokens with the same digits after the dot take the two-word reading; others the general one."""
    rng = np.random.default_rng(f)
    top = 10 ** min(8, 14 - f) - 1                       # at most 16 characters
    vals = [f"{x:.{f}f}" + ("." if f == 0 else "") for x in rng.uniform(-top, top, 5000)]
    vals += [f"{0:.{f}f}" + ("." if f == 0 else ""), "-" + f"{0:.{f}f}" + ("." if f == 0 else "")]
    tk, idx = _toks([v.encode() for v in vals])
    got = fs.decimals(tk, tk.starts[idx], tk.ends[idx])
    assert got.tolist() == [float(v) for v in vals]
    assert np.signbit(got).tolist() == [v.startswith("-") for v in vals]
    assert fs._dec_fixed(tk, tk.starts[idx], tk.ends[idx], tk.ends[idx] - tk.starts[idx],
                         np.ndarray(shape=(len(tk.buf) - 7,), dtype="<u8", buffer=tk.buf, strides=(1,))) is not None
    for odd in (["123456789.5", "1.5"] if f == 1 else ["1.5", "2.25"]):      # 9 integer digits / other fractions
        vals.append(odd)
    tk, idx = _toks([v.encode() for v in vals])
    assert fs.decimals(tk, tk.starts[idx], tk.ends[idx]).tolist() == [float(v) for v in vals]
    for bad in [b"1.2.3", b"--1." + b"0" * f, b"1-." + b"0" * f, b"." + b"x" * f]:
        tk, idx = _toks([vals[0].encode(), bad])
        assert fs.decimals(tk, tk.starts[idx], tk.ends[idx]) is None, bad


def test_small_ints_and_keys():
    ints = [b"0", b"7", b"12", b"345", b"99999999", b"00000001", b"10203040"]
    tk, idx = _toks(ints)
    assert fs.small_ints(tk, idx).tolist() == [int(v) for v in ints]
    for bad in [b"1a", b"-1", b"1.0", b":", b"/", b"123456789", b"nan"]:
        tk, idx = _toks([b"5", bad])
        assert fs.small_ints(tk, idx) is None, bad
    for short in ([b"0", b"7", b"9"], [b"3", b"42", b"0", b"99", b"10", b"5"]):   # one or two digits: byte by byte
        tk, idx = _toks(short)
        assert fs.small_ints(tk, idx).tolist() == [int(v) for v in short]
        for bad in [b"-1", b"a", b":", b"/", b"1a", b"a1", b"-", b"+5", b"9:", b"/0"][: 5 if len(short) == 3 else None]:
            tk, idx = _toks(short + [bad])
            assert fs.small_ints(tk, idx) is None, bad
    names = [b"M1", b"M10", b"p0", b"M1", b"abcdefgh", b"M10", b"n/a"]
    tk, idx = _toks(names)
    w = tk.words(idx)
    assert fs.word_bytes(w) == names
    assert fs.na_words(w) and not fs.na_words(w[:-1])
    keys = fs.Keys()
    c = keys.codes(w)
    assert fs.word_bytes(keys.keys[c]) == names and fs.word_bytes(keys.keys) == list(dict.fromkeys(names))
    big = (np.arange(5000, dtype=np.uint64) * np.uint64(7919)) ^ np.uint64(0x4D)      # many keys: a larger table
    c = keys.codes(big)
    assert (keys.keys[c] == big).all() and keys.bits > 16
    small = fs.Keys(10, slots=2)                           # a crowded table: many keys through ``extra``
    for part in np.array_split(big, 7):
        c = small.codes(part)
        assert (small.keys[c] == part).all()
    c = small.codes(big)
    assert (small.keys[c] == big).all() and len(small.extra) > 100 and small.bits < keys.bits
    tk, idx = _toks([b"abcdefghi"])
    assert tk.words(idx) is None


@pytest.mark.parametrize("data", [b"", b"[1]\nM1 2", b"[1]\r\nM1 2\r\n", b"[1]\nM1\t2\n", b"[1]\n\nM1 2\n",
                                  b"[1]\nM1  2\n", b"[1]\n M1 2\n", b"[1]\nM1 2\x00\n"])
def test_tokens_refuse_odd_layouts(data: bytes):
    assert fs.tokens(data) is None


def test_tokens_drop_one_trailing_blank():
    tk = fs.tokens(b"[1]\nM1 2 \nM2 3\n")
    assert [tk.text(i) for i in range(len(tk.starts))] == [b"[1]", b"M1", b"2", b"M2", b"3"]
    assert tk.line.tolist() == [0, 1, 1, 2, 2]


def test_pieces_keep_whole_snapshots(monkeypatch):
    data = _synthetic("MessageCopyCountReport", 1, snaps=60).encode()
    monkeypatch.setattr(ss, "PIECE", 100)
    parts = list(ss._pieces(data))
    assert len(parts) > 5 and b"".join(parts) == data
    assert all(p.startswith(b"[") and p.endswith(b"\n") for p in parts)


# ---------------------------------------------------------------------------------------------
# the shared real files

@pytest.mark.skipif(not REAL, reason="shared ONE report data not available")
@pytest.mark.parametrize("path", REAL, ids=lambda p: p.parent.name + "/" + _type(p))
def test_real_equals_whole(path: Path):
    rt = _type(path)
    w = whole(path)
    for chunk in (4096, 100_000, None):
        assert_exact(rt, w, summarize_path(path, chunk_bytes=chunk))


@pytest.mark.skipif(not REAL, reason="shared ONE report data not available")
@pytest.mark.parametrize("path", REAL, ids=lambda p: p.parent.name + "/" + _type(p))
def test_real_blocks_take_the_fast_path(path: Path):
    data = path.read_bytes()
    data = data[:data.rfind(b"\n[", 0, 300_000) + 1]
    rt = _type(path)
    if rt == "MessageLocationReport":
        assert ss._MessageLocation()._add_fast(data)
    else:
        assert (ss._location_fast if rt == "LocationSnapshotReport" else ss._copy_count_fast)(data) is not None


def test_src_type_is_what_the_folds_get():
    """The folds read ``src.data`` only (the block's bytes), as streaming.fold_blocks passes them."""
    src = _Src("x", _synthetic("MessageCopyCountReport").encode(), "MessageCopyCountReport", ":", [])
    fold = ss.COPY_COUNT.make()
    fold.add(src, lambda s: pytest.fail("a clean block needs no parser"))
    assert fold.finish().scalars["snapshots"] == 40.0


@pytest.mark.parametrize("case", ["four_digits", "wide", "repeats", "mixed_digits", "not_decimal", "negative_zero",
                                  "one_value"])
def test_coordinate_median_is_exact(case: str):
    """The location fold's coordinate column: the median equals pandas' to the bit in int32 and float64 mode."""
    rng = np.random.default_rng(len(case))
    if case == "four_digits":
        blocks = [np.round(rng.uniform(0, 3000, 5000), 4) for _ in range(7)]
    elif case == "wide":
        blocks = [np.round(rng.uniform(-2e5, 2e5, 3000), 2) for _ in range(5)]
    elif case == "repeats":
        blocks = [rng.integers(0, 5, 4000).astype(float) for _ in range(4)]
    elif case == "mixed_digits":                      # a later block needs more digits: float64 mode
        blocks = [np.round(rng.uniform(0, 99, 2000), 1), np.round(rng.uniform(0, 99, 2000), 6)]
    elif case == "not_decimal":
        blocks = [rng.uniform(0, 1, 3000) for _ in range(3)]
    elif case == "negative_zero":
        blocks = [np.array([-0.0, -0.0, -0.0, 1.5]), np.array([-0.0, 2.0])]
    else:
        blocks = [np.array([7.25])]
    col = ss._Coordinate()
    for b in blocks:
        col.add(b)
    allv = pd.Series(np.concatenate(blocks))
    st = col.stats("x")
    med = float(allv.median())
    assert st["x_median"] == med and np.signbit(st["x_median"]) == np.signbit(med)
    assert math.isclose(st["x_mean"], float(allv.mean()), rel_tol=1e-13)
    assert col.ints == (case in ("four_digits", "wide", "repeats", "one_value"))
    assert ss._Coordinate().stats("y") == {"y_mean": pytest.approx(math.nan, nan_ok=True),
                                            "y_median": pytest.approx(math.nan, nan_ok=True)}


# ---------------------------------------------------------------------------------------------
# the file-wide key table, ONE's own location shape, the message location bitmap

def test_keys_give_codes_in_order_of_appearance():
    rng = np.random.default_rng(4)
    keys = fs.Keys()
    seen: list[int] = []
    for n in (1, 50, 3000, 20000):                  # the table grows as keys come
        names = [f"M{int(i)}".encode() for i in rng.integers(0, n, 5000)]
        w = np.array([int.from_bytes(b, "little") for b in names], dtype=np.uint64)
        c = keys.codes(w)
        assert (keys.keys[c] == w).all()
        seen += [k for k in pd.unique(w).tolist() if k not in set(seen)]
        assert keys.keys.tolist() == seen
    w = rng.integers(0, 2 ** 63, 200_000).astype(np.uint64)     # random keys: many share a slot
    c = keys.codes(w)
    assert len(keys.extra) > 0 and (keys.keys[c] == w).all()
    assert len(np.unique(keys.keys)) == len(keys.keys)


def test_keys_refuse_too_many(monkeypatch):
    monkeypatch.setattr(fs.Keys, "MAX_KEYS", 10)
    keys = fs.Keys()
    assert keys.codes(np.arange(8, dtype=np.uint64)) is not None
    assert keys.codes(np.arange(20, dtype=np.uint64)) is None
    assert len(keys.keys) == 8


@pytest.mark.parametrize("rt", TYPES)
def test_too_many_keys_take_the_parser(tmp_path: Path, rt: str, monkeypatch):
    """More distinct names than the key table takes: the parser / line loop, same result."""
    p = tmp_path / f"x_{rt}.txt"
    p.write_text(_synthetic(rt, 2, snaps=80))
    w = whole(p)
    monkeypatch.setattr(fs.Keys, "MAX_KEYS", 9)
    for chunk in (200, 4096, 1 << 20):
        assert_exact(rt, w, summarize_path(p, chunk_bytes=chunk))


def _one_shape(order: str, snaps: int = 60, hosts: int = 9, seed: int = 0) -> str:
    """A location snapshot report as ONE writes it: every snapshot the same hosts in the same order
    (``order``: 'same'; 'reversed' after a first snapshot in name order; 'twice': a host listed twice)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(snaps):
        rows.append(f"[{10 * (k + 1)}]")
        hs = list(range(hosts)) if order == "same" or k == 0 else list(range(hosts))[::-1]
        if order == "twice":
            hs = hs + [hs[0]]
        rows += [f"p{h} {rng.uniform(0, 3000):.4f} {rng.uniform(0, 3000):.4f}" for h in hs]
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize("order", ["same", "reversed", "twice"])
def test_location_table_equals_the_sort(tmp_path: Path, order: str, no_fast, monkeypatch):
    """ONE's own shape folds its steps as a snapshot x host table: the same floats as the sort (the
    parser path) and the whole frame; a host twice in a snapshot takes the sort."""
    p = tmp_path / "x_LocationSnapshotReport.txt"
    p.write_text(_one_shape(order))
    w = whole(p)
    taken = []
    table = ss._Location._add_table
    monkeypatch.setattr(ss._Location, "_add_table", lambda self, *a: taken.append(table(self, *a)) or taken[-1])
    fast = {}
    for chunk in (300, 2000, 1 << 20):
        fast[chunk] = summarize_path(p, chunk_bytes=chunk)
        assert_exact("LocationSnapshotReport", w, fast[chunk])
    assert any(taken) == (order != "twice")
    no_fast()
    for chunk, s in fast.items():
        assert_exact("LocationSnapshotReport", summarize_path(p, chunk_bytes=chunk), s, summed=set())


def test_message_location_without_bitmap(tmp_path: Path, monkeypatch):
    """Distinct messages per snapshot by sorting (snapshots x messages beyond the bitmap) are the same."""
    p = tmp_path / "x_MessageLocationReport.txt"
    p.write_text(_synthetic("MessageLocationReport", 1, snaps=80))
    w = whole(p)
    monkeypatch.setattr(ss, "_BITMAP", 0)
    for piece in (1 << 18, 300):
        monkeypatch.setattr(ss, "PIECE", piece)
        for chunk in (64, 4096, 1 << 20):
            assert_exact("MessageLocationReport", w, summarize_path(p, chunk_bytes=chunk))


def test_scaled_copy_keeps_times_increasing(tmp_path: Path):
    """The benchmark's synthetic large files: snapshot times keep increasing, so the folds stream."""
    src = tmp_path / "src"
    src.mkdir()
    for rt in TYPES:
        p = src / f"x_{rt}.txt"
        p.write_text(_synthetic(rt, 1, snaps=30))
        q = bench.scaled_copy(str(p), 3, tmp_path)
        marks = [float(ln[1:-1]) for ln in Path(q).read_text().splitlines() if ln.startswith("[")]
        assert len(marks) == 90 and all(b > a for a, b in zip(marks, marks[1:]))
        body = [ln for ln in Path(q).read_text().splitlines() if not ln.startswith("[")]
        assert body == [ln for ln in p.read_text().splitlines() if not ln.startswith("[")] * 3
        spec = REGISTRY[rt]                            # the fold itself: NeedWholeFile would propagate
        assert_exact(rt, whole(q), fold_blocks(q, rt, spec.stream, spec.parse, iter_blocks(q, 500, []), ",", []))


@pytest.mark.parametrize("f", [0, 2, 4])
def test_mantissas_give_the_decimals(f: int):
    """fastpath_snapshots.mantissas: m / 10**f is the same float as decimals(); a -0 or mixed widths: None."""
    rng = np.random.default_rng(f)
    vals = [f"{x:.{f}f}" + ("." if f == 0 else "") for x in rng.uniform(-99999, 99999, 3000)]
    tk, idx = _toks([v.encode() for v in vals])
    s, e = tk.starts[idx], tk.ends[idx]
    m, got_f = fs.mantissas(tk, s, e)
    assert got_f == f and m.dtype == np.int64
    assert (m / fs._POW10F[f]).tolist() == fs.decimals(tk, s, e).tolist() == [float(v) for v in vals]
    for odd in ("-0." + "0" * f, "1.234567", "12345678901.5"):
        tk, idx = _toks([v.encode() for v in vals[:5] + [odd]])
        assert fs.mantissas(tk, tk.starts[idx], tk.ends[idx]) is None, odd


def test_coordinate_takes_mantissas():
    """Values handed with their mantissas give the same median and mean as values alone."""
    rng = np.random.default_rng(3)
    blocks = [np.round(rng.uniform(0, 3000, 4000), 4) for _ in range(5)] + [np.round(rng.uniform(0, 9, 50), 2)]
    plain, fast = ss._Coordinate(), ss._Coordinate()
    for i, b in enumerate(blocks):
        plain.add(b)
        f = 4 if i < 5 else 2                            # the last block: another f, the values' own check
        fast.add(b, (np.rint(b * 10.0 ** f).astype(np.int64), f))
    assert plain.stats("x") == fast.stats("x") and fast.ints and fast.f == 4


@pytest.mark.parametrize("case", ["four_digits", "wide", "repeats", "mantissas"])
def test_coordinate_memory_is_bounded(case: str, monkeypatch):
    """Beyond KEEP mantissas only a window around the running median is kept (or a count per value):
    the median is still pandas' to the bit."""
    monkeypatch.setattr(ss._Coordinate, "KEEP", 2000)
    rng = np.random.default_rng(7)
    col = ss._Coordinate()
    allv = []
    for i in range(40):
        if case == "repeats":
            b = rng.integers(0, 5, 700).astype(float)
        elif case == "wide":
            b = np.round(rng.uniform(-2e5, 2e5, 700), 2)
        else:
            b = np.round(rng.uniform(0, 3000, 700), 4)
        col.add(b, (np.rint(b * 1e4).astype(np.int64), 4) if case == "mantissas" else None)
        allv.append(b)
        assert col.kept <= 2000 + 700 and sum(len(p) for p in col.parts) == col.kept
    assert col.below > 0 and col.above > 0
    assert (col.hist is not None) == (case == "repeats")
    allv = pd.Series(np.concatenate(allv))
    st = col.stats("x")
    assert st["x_median"] == float(allv.median())
    assert math.isclose(st["x_mean"], float(allv.mean()), rel_tol=1e-13)


def test_coordinate_drifting_median_needs_the_whole_file(monkeypatch):
    monkeypatch.setattr(ss._Coordinate, "KEEP", 1000)
    col = ss._Coordinate()
    with pytest.raises(ss.NeedWholeFile):
        for i in range(100):                     # every block above all before it: the median walks out of the window
            col.add(np.arange(500, dtype=float) + 1000.0 * i)
        col.stats("x")


def test_location_with_a_narrow_window_equals_whole(tmp_path: Path, monkeypatch):
    """The location fold with a small KEEP: the same summary as the whole frame, streamed."""
    monkeypatch.setattr(ss._Coordinate, "KEEP", 400)
    p = tmp_path / "x_LocationSnapshotReport.txt"
    p.write_text(_one_shape("same", snaps=300))
    spec = REGISTRY["LocationSnapshotReport"]
    s = fold_blocks(str(p), "LocationSnapshotReport", spec.stream, spec.parse, iter_blocks(str(p), 1000, []), ",", [])
    assert_exact("LocationSnapshotReport", whole(p), s)


def _blocks_of(p: Path, chunk: int, snapshots: bool) -> tuple[list[tuple[bytes, int]], list[str]]:
    warns: list[str] = []
    b = iter_blocks(str(p), chunk, warns)
    return [(blk, int(line)) for blk, line in (b.snapshots() if snapshots else b)], warns


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 11, 64, 1 << 16])
@pytest.mark.parametrize("end", ["\n", "", "p9 1."])
def test_snapshot_blocks_are_whole_snapshots(tmp_path: Path, chunk: int, end: str):
    """textio's snapshot mode: blocks end before a '[' line (also when '\\n[' spans two reads), they
    join to the file's complete lines, and each block's line number is its first line's."""
    text = "[1]\np0 1.5 2.5\np1 3 4\n[2]\n[3]\np0 1 2\n\n [x\n[4]\n" + end
    p = tmp_path / "x_LocationSnapshotReport.txt"
    p.write_bytes(text.encode())
    got, warns = _blocks_of(p, chunk, True)
    whole_lines = text[:text.rfind("\n") + 1].encode()
    assert b"".join(b for b, _ in got) == whole_lines
    pos = 0
    for i, (blk, line) in enumerate(got):
        assert blk.endswith(b"\n") and (i == 0 or blk.startswith(b"["))
        assert line == whole_lines.count(b"\n", 0, pos) + 1
        pos += len(blk)
    if chunk in (1, 1 << 16):           # reads of one byte: every snapshot alone; one read: cut before its last '['
        assert len(got) == (4 if chunk == 1 else 2)
    assert bool(warns) == (not text.endswith("\n"))
    lines, w2 = _blocks_of(p, chunk, False)            # the line mode: the same bytes and warnings
    assert b"".join(b for b, _ in lines) == whole_lines and w2 == warns


def test_snapshot_errors_name_the_line(tmp_path: Path):
    """A bad marker deep in a streamed file: the error names the first line of its block (counted on demand)."""
    body = "".join(f"[{i}]\nM1 {i}\nM2 1\n" for i in range(1, 200))
    p = tmp_path / "x_MessageCopyCountReport.txt"
    p.write_text(body + "[oops]\nM1 1\n")
    with pytest.raises(ReportError, match=r"from line 598\)"):
        summarize_path(p, chunk_bytes=64)
    from oppnda_nb.reports.textio import LineAt
    at = LineAt(str(p), len(body))
    assert int(at) == 598 and at > 1 and f"{at}" == "598" and at == 598 and not LineAt(str(p), 0) > 1


@pytest.mark.parametrize("marker", [b"1", b"-2.5", b".5", b"7.", b"-0", b"0.1000000000000000055", b"1e3", b"x",
                                    b"1.2.3", b"-", b".", b"+1", b"", b"12345678901234567"])
def test_marker_times_are_read_at_once(marker: bytes):
    """Marker times read at once: the floats float() gives, for exactly the plain decimals _PLAIN takes."""
    data = b"[3]\nM1 1\n[" + marker + b"]\nM2 2\n"
    got = ss._lines(data)
    if ss._PLAIN.fullmatch(marker):
        t = got.t.tolist()
        assert t == [3.0, float(marker)] and math.copysign(1, t[1]) == math.copysign(1, float(marker))
    else:
        assert got is None


# ---------------------------------------------------------------------------------------------
# the marker/row grid, the markers' split reading, one-gather mantissas, new keys by a sort

def _grid_vs_rows(data: bytes, k: int) -> None:
    """_grid either refuses the block or gives exactly what _rows (the token reader) gives."""
    g = ss._grid(data, k)
    if g is None:
        return
    r = ss._rows(data, k)
    assert r is not None, data[:80]
    ln, rows, ri = r
    assert g.t.tolist() == ln.t.tolist()
    size, first = ln.rows()
    assert g.size.tolist() == size.tolist() and g.first.tolist() == first.tolist()
    for j in range(k):
        assert g.cols[j][0].tolist() == ln.tk.starts[ri + j].tolist()
        assert g.cols[j][1].tolist() == ln.tk.ends[ri + j].tolist()


@pytest.mark.parametrize("rt", ["LocationSnapshotReport", "MessageCopyCountReport"])
@pytest.mark.parametrize("how", ODD)
def test_grid_equals_the_token_reader(rt: str, how: str):
    """The grid reader (_grid) takes a block only when the token reader takes it the same way."""
    k = 3 if rt == "LocationSnapshotReport" else 2
    data = _odd(rt, how)
    data = data[:data.rfind(b"\n") + 1]
    _grid_vs_rows(data, k)
    _grid_vs_rows(_synthetic(rt, 1).encode(), k)
    assert ss._grid(_synthetic(rt, 1).encode(), k) is not None


@pytest.mark.parametrize("data", [b"[1]\nM1 2\n\n[2]\nM1 3\n", b"M1 2\n[2]\nM1 3\n", b"[1]\nM1 2 \n", b"[1] \nM1 2\n",
                                  b"[1]\nM1  2\n", b"[1]\n M1 2\n", b"[1]\n[M1 2\n", b"[1]\nM1 2 3\n", b"[1]\nM1\n",
                                  b"[1\nM1 2\n", b"[]\nM1 2\n", b"[1]\nM1\t2\n", b"[1]\r\nM1 2\r\n", b"[1]\nM1 2",
                                  b"[1]\n[2] x\n", b"[x]\nM1 2\n"])
def test_grid_refuses_what_it_does_not_read(data: bytes):
    """Blank lines, rows first, trailing/double/leading blanks, other token counts, odd markers: None."""
    assert ss._grid(data, 2) is None


def test_grid_with_trailing_blanks_takes_the_token_reader(tmp_path: Path):
    """A block the grid refuses but the token reader takes (one trailing blank per line) still folds on
    the fast path, with the same result as the whole frame."""
    rt = "MessageCopyCountReport"
    data = _synthetic(rt, 2).replace("\n", " \n").encode()
    assert ss._grid(data, 2) is None and ss._copy_count_fast(data) is not None
    p = tmp_path / f"x_{rt}.txt"
    p.write_bytes(data)
    assert_exact(rt, whole(p), summarize_path(p, chunk_bytes=1 << 20))


@pytest.mark.parametrize("n", [1, 5, 64, 65, 300])
def test_many_markers_are_read_like_few(n: int, monkeypatch):
    """Markers beyond _FEW_TIMES: the first (within 16 bytes of the block start) one by one, the rest
    at once; the same floats as float() either way, and the same None for a marker it does not read."""
    marks = [f"{0.1 * i + 3:.1f}" if i % 3 else str(i) for i in range(n)]
    data = "".join(f"[{m}]\nM{i} {i % 7}\n" for i, m in enumerate(marks)).encode()
    g = ss._grid(data, 2)
    assert g.t.tolist() == [float(m) for m in marks]
    monkeypatch.setattr(ss, "_FEW_TIMES", 0)
    assert ss._grid(data, 2).t.tolist() == [float(m) for m in marks]
    assert ss._lines(data).t.tolist() == [float(m) for m in marks]
    bad = data.replace(b"[" + marks[-1].encode() + b"]", b"[1e3]")
    assert ss._grid(bad, 2) is None and ss._lines(bad) is None


@pytest.mark.parametrize("f", [1, 2, 4, 7])
def test_mantissas_with_the_longest_integer_part(f: int):
    """Decimals of 8 - f integer digits (the one-gather read takes its first digit by itself) and
    mixed integer widths give the same mantissas as decimals(); a letter in any digit place: None."""
    rng = np.random.default_rng(f)
    k = 8 - f
    vals = [f"{int(rng.integers(0, 10 ** k))}.{int(rng.integers(0, 10 ** f)):0{f}d}" for _ in range(500)]
    vals += [f"{int(rng.integers(10 ** (k - 1), 10 ** k))}." + "9" * f, "0." + "0" * f]
    tk, idx = _toks([v.encode() for v in vals])
    s, e = tk.starts[idx], tk.ends[idx]
    m, got_f = fs.mantissas(tk, s, e)
    assert got_f == f and (m / fs._POW10F[f]).tolist() == [float(v) for v in vals]
    for pos in range(len(vals[-2])):
        odd = vals[-2][:pos] + "x" + vals[-2][pos + 1:]
        tk, idx = _toks([v.encode() for v in vals[:3] + [odd]])
        assert fs.mantissas(tk, tk.starts[idx], tk.ends[idx]) is None, odd


def test_small_copy_counts():
    """One- and two-digit counts (the uint8 read) and their refusals."""
    tk, idx = _toks([b"7", b"42", b"0", b"99", b"5"])
    assert fs.ints_at(tk, tk.starts[idx], tk.ends[idx]).tolist() == [7, 42, 0, 99, 5]
    for odd in (b"x", b"4x", b"x4", b"-1", b"-"):
        tk, idx = _toks([b"7", odd])
        assert fs.ints_at(tk, tk.starts[idx], tk.ends[idx]) is None, odd


@pytest.mark.parametrize("n", [0, 1, 50, fs._FEW_NEW + 10])
def test_new_keys_numbered_as_pandas_does(n: int):
    """_factorize (a sort for a few new keys, pandas beyond _FEW_NEW) gives pd.factorize's codes and keys."""
    rng = np.random.default_rng(n)
    w = rng.integers(1, max(n // 3, 2) + 1, n).astype(np.uint64) * np.uint64(0x10001)
    codes, keys = fs._factorize(w)
    pc, pk = pd.factorize(w, sort=False)
    assert codes.tolist() == pc.tolist() and keys.tolist() == pk.tolist()


def test_snapshot_blocks_are_read_in_smaller_parts(tmp_path: Path, monkeypatch):
    """Snapshot reports are read in blocks of at most streaming.SNAPSHOT_BLOCK bytes (a longer snapshot
    makes a longer block); the summary does not depend on it."""
    from oppnda_nb.reports import streaming
    rt = "MessageCopyCountReport"
    p = tmp_path / f"x_{rt}.txt"
    p.write_text(_synthetic(rt, 0, snaps=400))
    w = whole(p)
    seen = []
    real = ss._CopyCount.add
    monkeypatch.setattr(ss._CopyCount, "add", lambda self, src, parse: (seen.append(len(src.data)), real(self, src, parse)))
    for most in (64, 1000, 1 << 20):
        monkeypatch.setattr(streaming, "SNAPSHOT_BLOCK", most)
        seen.clear()
        assert_exact(rt, w, summarize_path(p, chunk_bytes=4096))
        longest = max(len(s) for s in _synthetic(rt, 0, snaps=400).encode().split(b"\n[")) + 2
        assert max(seen) <= max(min(most, 4096), longest) + longest
        assert len(seen) >= p.stat().st_size // max(min(most, 4096), longest) // 2
