"""Averaging: OppNDA byte-for-byte reproduction, selection/skip rules, path safety, curves, CLI."""
from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_data import REFERENCE

from oppnda_nb import averaging
from oppnda_nb.averaging import (
    AveragerConfig, FileSummary, SummarizeSettings, aggregate, average_curves, safe_output_name, sample_folder,
    load_config, select_files, summarize_file,
)
from oppnda_nb.job import average_folder
from oppnda_nb.errors import OppndaError

REF = REFERENCE
needs_ref = pytest.mark.skipif(not (REF / "expected").is_dir(), reason="OppNDA reference data not available")


def _ref_config() -> dict:
    return json.loads((REF / "averager_config.json").read_text())


def _kv(path: Path, **metrics) -> None:
    path.write_text("Message stats for scenario X\nsim_time: 100.0\n"
                    + "".join(f"{k}: {v}\n" for k, v in metrics.items()))


def _listing(folder: Path) -> dict[str, bytes]:
    """The averaged files of an output folder (run.json, the run's accounting, aside)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != "run.json"}


# ----------------------------------------------------------------------------- OppNDA reproduction

@needs_ref
@pytest.mark.parametrize("workers", [1, 2])
def test_reference_outputs_byte_for_byte(tmp_path, workers):
    out = tmp_path / "out"
    res = average_folder(str(REF / "averager_config.json"), output=out, workers=workers)
    expected = _listing(REF / "expected")
    got = _listing(out)
    assert json.loads((out / "run.json").read_text())["status"] == "finished"   # the accounting, beside
    assert len(expected) == 24
    assert sorted(got) == sorted(expected)            # all 24, and no extra (or temp) files
    assert not [p for p in out.iterdir() if p.name not in expected and p.name != "run.json"]
    for name, data in expected.items():
        assert got[name] == data, name
    assert res.files_read == 715 and not res.errors and not res.skipped
    assert len(res.written) == 24


@needs_ref
def test_each_file_is_summarized_once_for_all_strategies(tmp_path):
    res = average_folder(str(REF / "averager_config.json"), output=tmp_path, workers=1)
    assert len(res.config.strategies) == 2
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["counts"]["processed"] == 715 == res.files_read   # one summary per file serves both strategies


@needs_ref
def test_tables_and_long_frame_match_hand_computation():
    cfg = _ref_config()
    res = average_folder(cfg, folder=REF / "reports", write=False, workers=1)
    t = res.tables["ttl_average"]
    assert list(t.columns[:4]) == ["router", "ttl", "report_type", "n_files"]
    assert t["ttl"].dtype.kind == "i"                  # numeric-looking values become numbers
    row = t[t["ttl"] == 60].iloc[0]
    files = sorted((REF / "reports").glob("TEST_EpidemicRouter_*_60_*M_MessageStatsReport.txt"))
    vals = []
    for f in files:
        for line in f.read_text().splitlines():
            if line.startswith("delivered:"):
                vals.append(float(line.split(":")[1]))
    assert row["n_files"] == len(files) == 55
    assert row["delivered_mean"] == pytest.approx(np.mean(vals))
    assert row["delivered_std"] == pytest.approx(np.std(vals, ddof=1))
    assert row["delivered_n"] == 55
    assert row["delivered_ci95"] == pytest.approx(2.004879288 * np.std(vals, ddof=1) / math.sqrt(55), rel=1e-8)
    assert math.isnan(row["rtt_avg_mean"]) and row["rtt_avg_n"] == 0     # NaN in every run stays NaN
    assert "sim_time_mean" not in t.columns                               # ignore_fields
    long = res.long
    assert {"strategy", "report_type", "router", "ttl", "buffer", "metric", "mean", "std", "n",
            "ci_low", "ci_high"} <= set(long.columns)
    sel = long[(long.strategy == "ttl_average") & (long.ttl == 60) & (long.metric == "delivered")]
    assert len(sel) == 1 and sel["mean"].iloc[0] == row["delivered_mean"]
    assert sel["ci_low"].iloc[0] < sel["mean"].iloc[0] < sel["ci_high"].iloc[0]


# ----------------------------------------------------------------------------- selection and skips

def _small_folder(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    for seed, (a, b) in {"1": (1.0, 10), "2": (3.0, 20), "3": ("NaN", 60)}.items():
        _kv(d / f"TEST_R_{seed}_60_5M_MessageStatsReport.txt", delivered=a, created=b)
    _kv(d / "TEST_R_1_120_5M_MessageStatsReport.txt", delivered=5.0, created=1)   # alone in its ttl group
    return d


def _small_config(**over) -> dict:
    cfg = {
        "report_types": ["MessageStatsReport"],
        "filename_pattern": {"delimiter": "_", "components": {"scenario_name": 0, "router": 1, "seed": 2, "ttl": 3,
                                                             "buffer": 4, "report_type": 5},
                             "extract": {"buffer": r"(\d+)"}},
        "data_separator": ":",
        "ignore_fields": ["sim_time"],
        "average_groups": [{"group_by": ["router", "ttl"], "min_files": 2, "name": "ttl_average",
                            "output_template": "{report_type}_{router}_{ttl}_ttl_average.txt"}],
        "output": {"precision": 4},
    }
    cfg.update(over)
    return cfg


def test_small_job_values_min_files_and_nan(tmp_path):
    d = _small_folder(tmp_path)
    res = average_folder(_small_config(), folder=d, output=tmp_path / "out")
    assert [p.name for p in res.written] == ["MessageStatsReport_R_60_ttl_average.txt"]
    assert res.written[0].read_text() == "created: 30.0000\ndelivered: 2.0000\n"
    assert [(s, k, r) for s, _, k, r in res.skipped_groups] == [("ttl_average", {"router": "R", "ttl": "120"},
                                                                 "1 file(s) < min_files=2")]
    g = res.groups[0]
    assert g.metrics["delivered"]["n"] == 2 and g.metrics["created"]["n"] == 3
    assert g.metrics["created"]["std"] == pytest.approx(math.sqrt(700.0))


def test_skip_rules_are_listed_with_reasons(tmp_path):
    d = _small_folder(tmp_path)
    (d / "MessageStatsReport_R_60_ttl_average.txt").write_text("delivered: 1.0\n")   # earlier output
    (d / "summary_AVERAGE_notes.txt").write_text("x: 1\n")
    (d / "AVG_R_60.txt").write_text("delivered: 1.0\n")                              # template prefix
    (d / "MessageStatsReport.txt").write_text("delivered: 1.0\n")                    # too few parts
    (d / "TEST_R_1_60_5M_ContactTimesReport.txt").write_text("0.0 1\n")              # other report type
    (d / "notes.csv").write_text("a,b\n")
    (d / "sub").mkdir()
    cfg = _small_config()
    cfg["average_groups"].append({"group_by": ["router"], "name": "r", "output_template": "AVG_{router}_{ttl}.txt"})
    files, skipped = select_files(d, cfg)
    assert [Path(f).name for f in files] == sorted(p.name for p in d.glob("TEST_*MessageStatsReport.txt"))
    why = {Path(p).name: r for p, r in skipped}
    assert "contains 'average'" in why["MessageStatsReport_R_60_ttl_average.txt"]
    assert "contains 'average'" in why["summary_AVERAGE_notes.txt"]
    assert "'AVG_'" in why["AVG_R_60.txt"]
    assert "too few" in why["MessageStatsReport.txt"]
    assert "report type" in why["TEST_R_1_60_5M_ContactTimesReport.txt"]
    assert ".txt" in why["notes.csv"]
    assert len(skipped) == 6                                                          # the folder is not listed


def test_template_pattern_non_matching_names_are_reported(tmp_path):
    d = _small_folder(tmp_path)
    (d / "random_name.txt").write_text("delivered: 1\n")
    res = average_folder(None, folder=d, write=False, pattern="{scenario}_{router}_{seed}_{ttl}_{buffer}M_{report_type}")
    why = dict((Path(p).name, r) for p, r in res.skipped)
    assert "template" in why["random_name.txt"]
    t = res.tables["average"]
    assert t["ttl"].tolist() == [60] and t["buffer"].dtype.kind == "i" and t["n_files"].tolist() == [3]
    assert [k["ttl"] for s, _, k, _ in res.skipped_groups if s == "average"] == ["120"]


def test_second_run_equals_first_when_outputs_are_in_the_input_folder(tmp_path):
    d = _small_folder(tmp_path)
    first = average_folder(_small_config(), folder=d, output=d)
    snap1 = _listing(d)
    second = average_folder(_small_config(), folder=d, output=d)
    assert _listing(d) == snap1
    assert [p.name for p in second.written] == [p.name for p in first.written]
    assert second.files_read == first.files_read == 4
    pd.testing.assert_frame_equal(first.tables["ttl_average"], second.tables["ttl_average"])
    assert [Path(p).name for p, _ in second.skipped] == ["MessageStatsReport_R_60_ttl_average.txt"]


def test_default_output_folder_is_inside_input_and_rerun_is_stable(tmp_path):
    d = _small_folder(tmp_path)
    r1 = average_folder(_small_config(), folder=d)
    assert r1.output_dir == d / "averaged" and r1.written
    r2 = average_folder(_small_config(), folder=d)
    assert r2.files_read == r1.files_read and not r2.skipped


# ----------------------------------------------------------------------------- path safety

@pytest.mark.parametrize("template", ["../escape_{router}_{ttl}.txt", "/tmp/abs_{router}_{ttl}.txt",
                                      "{router}/../../x_{ttl}.txt", "..\\win_{ttl}.txt", "..", "{router}/{ttl}"])
def test_templates_cannot_write_outside_the_output_folder(tmp_path, template):
    d = _small_folder(tmp_path)
    out = tmp_path / "deep" / "out"
    cfg = _small_config(average_groups=[{"group_by": ["router", "ttl"], "name": "x", "output_template": template}])
    before = {p for p in tmp_path.rglob("*")}
    res = average_folder(cfg, folder=d, output=out)
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(p == out or p in out.parents or out in p.parents for p in created)
    assert all(p.parent == out for p in res.written)
    for p in res.written:
        assert "/" not in p.name and not p.name.startswith(".")


def test_safe_output_name():
    assert safe_output_name("../../etc/passwd") == "_.._etc_passwd"
    assert safe_output_name("..") == "averaged.txt"
    assert "/" not in safe_output_name("/abs/x.txt") and "\\" not in safe_output_name("a\\b")


# ----------------------------------------------------------------------------- curves

def test_histogram_curves_are_averaged_per_bin():
    a = pd.DataFrame({"x": [0.0, 1.0], "count": [2.0, 4.0]})
    b = pd.DataFrame({"x": [0.0, 2.0], "count": [4.0, 6.0]})
    c = average_curves([a, b], "histogram")
    assert list(c["x"]) == [0.0, 1.0, 2.0]
    assert list(c["count_mean"]) == [3.0, 2.0, 3.0]          # a missing bin counts 0
    assert list(c["count_n"]) == [2, 2, 2]
    assert c["count_std"].tolist() == pytest.approx([math.sqrt(2), math.sqrt(8), math.sqrt(18)])
    assert c["count_ci95"][0] == pytest.approx(12.706204736 * math.sqrt(2) / math.sqrt(2))


def test_timeseries_curves_use_a_common_grid_over_the_shared_range():
    a = pd.DataFrame({"x": [0.0, 2.5, 5.0, 7.5, 10.0], "y": [0.0, 2.5, 5.0, 7.5, 10.0]})   # y = x
    b = pd.DataFrame({"x": [2.0, 7.0, 12.0], "y": [0.0, 10.0, 20.0]})  # y = 2(x-2)
    c = average_curves([a, b], "timeseries", grid_points=5, step=False)   # 5 = min(grid_points, longest run)
    assert c["x"].tolist() == [2.0, 4.0, 6.0, 8.0, 10.0]              # overlap [2, 10], no extrapolation
    assert c["y_mean"].tolist() == pytest.approx([1.0, 4.0, 7.0, 10.0, 13.0])
    assert c["y_n"].tolist() == [2] * 5
    # default: step-like series sampled by forward fill (last value at or before each grid point)
    s = average_curves([a, b], "timeseries", grid_points=5)
    # a at 2,4,6,8,10 -> 0, 2.5, 5, 7.5, 10 ; b -> 0, 0, 0, 10, 10
    assert s["y_mean"].tolist() == pytest.approx([0.0, 1.25, 2.5, 8.75, 10.0])
    assert average_curves([a, pd.DataFrame({"x": [20.0, 30.0], "y": [1.0, 1.0]})], "timeseries") is None


def test_curves_flow_through_aggregate_into_tables():
    pat = {"delimiter": "_", "components": {"router": 0, "seed": 1, "report_type": 2}}
    sums = [FileSummary(path=f"/x/R_{s}_H.txt", params={"router": "R", "seed": str(s), "report_type": "H"},
                        report_type="H", scalars={"total": float(s)}, kind="histogram", curve_kind="histogram",
                        curve=pd.DataFrame({"x": [0.0, 1.0], "count": [s, 2.0 * s]}))
            for s in (1, 3)]
    res = aggregate(sums, {"filename_pattern": pat, "average_groups": [{"group_by": ["router"], "name": "g"}]})
    assert res.tables["g"]["total_mean"].tolist() == [2.0]
    cur = res.curves["g"]
    assert cur["count_mean"].tolist() == [2.0, 4.0] and set(cur["router"]) == {"R"}
    assert res.write_oppnda.__doc__  # histogram groups get no OppNDA file unless asked


@pytest.mark.parametrize("ragged", [False, True])
def test_shared_matrix_gives_each_groups_own_statistics(ragged):
    """The statistics read from one matrix per report type are, bit for bit, those of each group's
    own values in file order (numpy's summation order), NaNs and a ragged run included."""
    from oppnda_nb.averaging.groups import _group_stats

    rng = np.random.default_rng(7)
    pat = {"delimiter": "_", "components": {"router": 0, "seed": 1, "ttl": 2, "report_type": 3}}
    cfg = {"filename_pattern": pat, "average_groups": [{"group_by": ["router"], "name": "r"},
                                                       {"group_by": ["ttl"], "name": "t"}]}
    sums = []
    for i in range(40):
        vals = {k: float(v) for k, v in zip("abcd", rng.normal(1e3, 50.0, 4) * 1.1)}
        if i % 7 == 0:
            vals["b"] = math.nan
        if ragged and i == 5:
            del vals["c"]
        router, ttl = "RS"[i % 2], str(60 * (1 + i % 3))
        sums.append(FileSummary(path=f"/x/{router}_{i:03d}_{ttl}_MessageStatsReport.txt",
                                params={"router": router, "seed": str(i), "ttl": ttl},
                                report_type="MessageStatsReport", scalars=vals))
    res = aggregate(sums, cfg)
    assert len(res.groups) == 5
    for g in res.groups:
        members = sorted((s for s in sums if s.path in g.files), key=lambda s: os.path.basename(s.path))
        assert [s.path for s in members] == g.files
        own = _group_stats(members)
        assert list(g.metrics) == list(own)
        for k, st in g.metrics.items():
            assert list(st) == list(own[k])
            assert all(a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(st.values(), own[k].values())), k


def test_group_keys_are_text_whatever_the_params_hold():
    """Groups are keyed by the text of each group_by value (a missing one: 'unknown'), in file-name
    order, also when a summary holds numbers or lacks a field (the general path of the keys)."""
    pat = {"delimiter": "_", "components": {"router": 0, "seed": 1, "ttl": 2, "report_type": 3}}
    cfg = {"filename_pattern": pat, "average_groups": [{"group_by": ["router", "ttl"], "name": "g", "min_files": 1},
                                                       {"group_by": ["ttl"], "name": "t", "min_files": 1}]}

    def summ(name, params, v):
        return FileSummary(path=f"/x/{name}", params=params, report_type="MessageStatsReport", scalars={"a": v})

    texts = [summ("R_1_10_MessageStatsReport.txt", {"router": "R", "seed": "1", "ttl": "10"}, 1.0),
             summ("R_2_10_MessageStatsReport.txt", {"router": "R", "seed": "2", "ttl": "10"}, 3.0),
             summ("S_1_20_MessageStatsReport.txt", {"router": "S", "seed": "1"}, 5.0)]
    mixed = [texts[0], summ("R_2_10_MessageStatsReport.txt", {"router": "R", "seed": 2, "ttl": 10}, 3.0), texts[2]]
    for sums in (texts, mixed):
        res = aggregate(sums, cfg)
        got = [(g.strategy, g.key, g.metrics["a"]["mean"], g.metrics["a"]["n"]) for g in res.groups]
        assert got == [("g", {"router": "R", "ttl": "10"}, 2.0, 2), ("g", {"router": "S", "ttl": "unknown"}, 5.0, 1),
                       ("t", {"ttl": "10"}, 2.0, 2), ("t", {"ttl": "unknown"}, 5.0, 1)]


# ----------------------------------------------------------------------------- config, CLI, sample

@needs_ref
def test_relative_folder_resolved_against_config_dir(tmp_path, monkeypatch):
    cfgdir = tmp_path / "proj"
    (cfgdir / "reports").mkdir(parents=True)
    for f in sorted((REF / "reports").glob("TEST_EpidemicRouter_10_104_*"))[:3]:
        shutil.copy(f, cfgdir / "reports" / f.name)
    cfg = _ref_config()
    (cfgdir / "averager_config.json").write_text(json.dumps(cfg))
    monkeypatch.chdir(tmp_path)                      # "reports/" does not exist here
    res = average_folder(str(cfgdir / "averager_config.json"), output=tmp_path / "o")
    assert res.folder == cfgdir / "reports" and res.files_read == 3
    with pytest.raises(OppndaError, match="not found"):
        average_folder(str(cfgdir / "averager_config.json"), folder=tmp_path / "nope")


def test_bad_configs_raise_user_errors(tmp_path):
    with pytest.raises(OppndaError):
        average_folder(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(OppndaError):
        average_folder(tmp_path / "bad.json")
    with pytest.raises(OppndaError):
        AveragerConfig.from_dict({"average_groups": [{"name": "x"}]})
    with pytest.raises(OppndaError):
        average_folder(None, folder=None)


@needs_ref
def test_cli_prints_one_line_per_strategy_plus_totals(tmp_path, capsys):
    from oppnda_nb import cli

    assert cli.main(["average", str(REF / "averager_config.json"), "--output", str(tmp_path), "--workers", "1",
                     "--quiet"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("ttl_average:") and "13 files written" in lines[0]
    assert lines[1].startswith("buffer_average:") and "11 files written" in lines[1]
    assert lines[2].startswith("total: 715 files read, 0 skipped, 0 failed, 24 averaged files written")


def test_bundled_sample_is_small_and_has_two_seeds_per_combination():
    d = sample_folder()
    files = sorted(p for p in d.iterdir() if p.suffix == ".txt")
    assert files and sum(p.stat().st_size for p in files) <= 5 * 1024 * 1024
    assert (d.parent / "README.md").is_file()
    combos: dict[tuple, set] = {}
    for p in files:
        _, router, seed, ttl, buf, rtype = p.stem.split("_")
        combos.setdefault((router, ttl, buf, rtype), set()).add(seed)
    assert all(len(s) >= 2 for s in combos.values())
    assert len({c[0] for c in combos}) >= 3 and len({c[3] for c in combos}) >= 5


def test_default_config_on_sample(tmp_path):
    res = average_folder(folder=sample_folder(), output=tmp_path, workers=1)
    assert res.files_read == len([p for p in sample_folder().iterdir() if p.suffix == ".txt"])
    assert not res.errors and not res.skipped
    names = {s.name for s in res.config.strategies}
    assert names == {"average", "ttl_average", "buffer_average"}
    t = res.table("average", "MessageStatsReport")
    assert len(t) == 27 and set(t["n_files"]) == {2}
    assert (tmp_path / "MessageStatsReport_EpidemicRouter_180_10_ttl_average.txt").exists() is False
    assert (tmp_path / "MessageStatsReport_EpidemicRouter_180_ttl_average.txt").exists()
    csvs = res.to_csv(tmp_path / "csv")
    assert {p.name for p in csvs} >= {"average_MessageStatsReport.csv", "average_ContactTimesReport.csv",
                                      "long.csv", "skipped.csv", "errors.csv"}
    per_type = pd.read_csv(tmp_path / "csv" / "average_MessageStatsReport.csv")
    assert set(per_type["report_type"]) == {"MessageStatsReport"}
    assert not [c for c in per_type.columns if per_type[c].isna().all()]   # only this type's metrics
    assert per_type["delivery_prob_n"].dtype.kind == "i"                   # counts are integers
    assert "00000000" not in (tmp_path / "csv" / "long.csv").read_text()  # no float noise
    # curves: one file per strategy and report type, only that type's columns, the same rows as .curves
    curves = pd.read_csv(tmp_path / "csv" / "curves_average_BufferOccupancyReport.csv")
    whole = res.curves["average"]
    whole = whole[whole["report_type"] == "BufferOccupancyReport"].dropna(axis=1, how="all").reset_index(drop=True)
    assert list(curves.columns) == list(whole.columns) and len(curves) == len(whole) > 0
    assert np.allclose(curves.select_dtypes("number"), whole[curves.select_dtypes("number").columns], equal_nan=True)


def test_output_names_are_the_groups_names_without_statistics():
    from oppnda_nb.averaging import output_names

    config = load_config(None)
    settings = config.settings()
    summaries = [summarize_file(str(p), settings) for p in sorted(sample_folder().glob("*.txt"))[:60]]
    res = aggregate(summaries, config)
    assert res.groups and res.skipped_groups  # both kinds of groups occur
    assert output_names(summaries, config) == [g.output_name for g in res.groups]


def test_identical_runs_have_zero_spread():
    from oppnda_nb.stats import describe_rows

    st = describe_rows(np.array([[19995.1] * 7]))  # their float mean is 3.6e-12 off
    assert st["std"][0] == 0.0 and st["ci95"][0] == 0.0


def test_non_utf8_file_names_are_written_with_an_escape(tmp_path):
    d = _small_folder(tmp_path)
    bad = os.path.join(os.fsencode(str(d)), b"TEST_R_9_60_5M_Message\xffStatsReport.txt")
    with open(bad, "wb") as fh:
        fh.write(b"created: 1\n")
    res = average_folder(_small_config(), folder=d, output=tmp_path / "o", csv=True)
    text = (tmp_path / "o" / "csv" / "skipped.csv").read_text(encoding="utf-8")
    assert "Message\\xffStatsReport" in text
    assert (tmp_path / "o" / "csv" / "errors.csv").is_file() and res.files_read == 4


def test_summarize_settings_and_summaries_pickle():
    import pickle

    s = AveragerConfig.default().settings()
    assert isinstance(s, SummarizeSettings)
    assert pickle.loads(pickle.dumps(s)).pattern.parse("TEST_R_1_2_3M_X.txt")["buffer"] == "3"


@pytest.mark.parametrize("params, scalars, compact", [
    ({"router": "EpidemicRouter", "seed": "1"}, {"delivered": 5.0, "latency_avg": math.nan, "zero": -0.0}, True),
    ({}, {}, True),
    ({"": ""}, {"": 1e308}, True),                                      # empty key and text
    ({"router": "a\0b"}, {"k": 1.0}, False),                            # a NUL in a text: field by field
    ({"router": "R"}, {"k\0": 1.0, "n": 2}, False),                     # a NUL in a key, an int value
])
def test_summaries_pickle_compactly_and_come_back_the_same(params, scalars, compact):
    """Summaries go through pickle (workers, the cache): the same fields, values bit for bit and
    their types, keys in order; the keys come back interned (shared by thousands of summaries)."""
    import pickle
    import struct

    s = FileSummary("/x/TEST_R_1_2_3M_MessageStatsReport.txt", params, "MessageStatsReport", scalars,
                    warnings=("a warning",))
    back = pickle.loads(pickle.dumps(s, protocol=4))
    assert (back.path, back.report_type, back.curve, back.curve_kind, back.kind, back.warnings) == \
        (s.path, s.report_type, s.curve, s.curve_kind, s.kind, s.warnings)
    assert back.params == params and list(back.params) == list(params)
    assert list(back.scalars) == list(scalars)
    assert [(type(v), struct.pack("<d", v)) for v in back.scalars.values()] == \
        [(type(v), struct.pack("<d", v)) for v in scalars.values()]
    assert (pickle.dumps(s, protocol=4).count(b"FileSummary") == 0) == compact   # (built by a function)
    if compact:
        again = pickle.loads(pickle.dumps(s, protocol=4))
        assert all(a is b for a, b in zip(back.scalars, again.scalars))
        assert all(a is b for a, b in zip(back.params.values(), again.params.values()))


@needs_ref
def test_fast_keyvalue_path_equals_read_report_path():
    from oppnda_nb import reports

    cfg = AveragerConfig.from_dict(_ref_config())
    files = sorted(str(p) for p in (REF / "reports").glob("TEST_*"))[:40]
    a = [averaging.summarize_file(f, cfg.settings()) for f in files]
    b = [reports.summarize_report(reports.read_report(f)) for f in files]
    for x, y in zip(a, b):
        assert x.report_type == "MessageStatsReport" and x.kind == "keyvalue"
        want = {k: v for k, v in y.scalars.items() if k != "sim_time"}
        assert list(x.scalars) == list(want) and "sim_time" not in x.scalars
        assert np.array_equal(np.array(list(x.scalars.values())), np.array(list(want.values())), equal_nan=True)


def test_unreadable_files_are_collected_not_fatal(tmp_path):
    d = _small_folder(tmp_path)
    (d / "TEST_R_4_60_5M_MessageStatsReport.txt").write_bytes(b"")                 # killed run
    (d / "TEST_R_5_60_5M_MessageStatsReport.txt").write_bytes(b"\x00\x01binary")
    res = average_folder(_small_config(), folder=d, output=tmp_path / "o", workers=1)
    why = {Path(p).name: r for p, r in res.errors}
    assert set(why) == {"TEST_R_4_60_5M_MessageStatsReport.txt", "TEST_R_5_60_5M_MessageStatsReport.txt"}
    assert all(why.values())
    assert res.files_read == 4 and res.groups[0].metrics["created"]["n"] == 3
    assert any(line.startswith("failed: TEST_R_4") for line in res.summary_lines())


def test_sample_curves_are_averaged_for_histograms_and_series(tmp_path):
    res = average_folder(folder=sample_folder(), write=False, workers=1)
    cur = res.curves["average"]
    kinds = dict(cur.groupby("report_type")["curve_kind"].first())
    assert kinds.get("ContactTimesReport") == "histogram"
    assert kinds.get("BufferOccupancyReport") == "timeseries"
    bo = cur[(cur.report_type == "BufferOccupancyReport") & (cur.router == "EpidemicRouter") & (cur.buffer == 10)]
    assert 1 < len(bo) <= averaging.GRID_POINTS and set(bo["y_n"]) == {2}
    # per-message tables are compared through their per-run aggregate scalars
    t = res.table("ttl_average", "DeliveredMessagesReport")
    assert len(t) == 9 and (t["n_files"] == 6).all() and any(c.endswith("_mean") for c in t.columns)


def test_pool_and_in_process_collect_the_same_errors(tmp_path):
    d = _small_folder(tmp_path)
    (d / "TEST_R_4_60_5M_MessageStatsReport.txt").write_bytes(b"")
    (d / "TEST_R_5_60_5M_MessageStatsReport.txt").write_bytes(b"\x00\x01binary")
    seq = average_folder(_small_config(), folder=d, output=tmp_path / "seq", workers=1)
    pooled = average_folder(_small_config(), folder=d, output=tmp_path / "pool", workers=2, start_method="fork")
    assert pooled.workers == 2 and seq.workers == 1
    assert pooled.errors == seq.errors and len(seq.errors) == 2
    assert _listing(tmp_path / "seq") == _listing(tmp_path / "pool")


def test_group_by_an_unknown_parameter_is_a_user_error():
    from oppnda_nb.averaging import prepare_config

    with pytest.raises(OppndaError, match="'nosuch'.*name pattern has: scenario_name, router, seed"):
        prepare_config(group_by="router,nosuch")
    assert [s.group_by for s in prepare_config(group_by="router,report_type").strategies] == [["router", "report_type"]]


@pytest.mark.parametrize("key,value", [
    ("file_filter", ".txt"), ("output", "out"), ("report_types", 5), ("ignore_fields", 3), ("folder", 7),
    ("ignore_fields", [1, 2]), ("average_groups", {"x": 1}),
])
def test_config_values_of_the_wrong_type_name_the_key(key, value):
    with pytest.raises(OppndaError, match=repr(key)):
        AveragerConfig.from_dict({key: value})


def test_importing_a_submodule_never_hides_a_lazy_function():
    import importlib
    import pkgutil

    from oppnda_nb import averaging

    for sub in pkgutil.iter_modules(averaging.__path__):
        importlib.import_module(f"oppnda_nb.averaging.{sub.name}")  # sets the submodule on the package
    assert callable(averaging.aggregate) and callable(averaging.select_files)
    assert not {s.name for s in pkgutil.iter_modules(averaging.__path__)} & set(averaging.__all__)


def test_an_output_never_replaces_an_input_even_through_a_symlinked_folder(tmp_path):
    from oppnda_nb.averaging.writers import Protected

    ins = tmp_path / "in"
    ins.mkdir()
    (ins / "a_MessageStatsReport.txt").write_text("x: 1\n")
    (tmp_path / "link").symlink_to(ins, target_is_directory=True)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a_MessageStatsReport.txt").write_text("an older output\n")
    guard = Protected([str(ins / "a_MessageStatsReport.txt")])
    assert guard.holds(tmp_path / "link" / "a_MessageStatsReport.txt")    # the input itself, by another path
    assert guard.holds(ins / "a_MessageStatsReport.txt")
    assert not guard.holds(tmp_path / "out" / "a_MessageStatsReport.txt")  # same name, another folder
    assert not guard.holds(tmp_path / "link" / "b_MessageStatsReport.txt")  # not there
