"""%oppnda in a real IPython shell: loading, every sub-command and every error path."""
from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.testing.globalipapp import get_ipython

from oppnda_nb import magics
from oppnda_nb import panel as panel_mod
from test_panel import SAMPLE, FakeRunner, wait_until


@pytest.fixture(scope="module")
def ip():
    shell = get_ipython()
    shell.run_line_magic("load_ext", "oppnda_nb")
    yield shell
    shell.run_line_magic("unload_ext", "oppnda_nb")


@pytest.fixture
def shown(ip, monkeypatch):
    """Everything displayed (mime bundles), as a notebook would receive it."""
    bundles: list[dict] = []
    monkeypatch.setattr(ip.display_pub, "publish",
                        lambda data, metadata=None, **kw: bundles.append(dict(data)))
    return bundles


@pytest.fixture
def fake(monkeypatch):
    runner = FakeRunner()
    monkeypatch.setattr(panel_mod, "_runner", lambda: runner)
    yield runner
    if runner.current is not None and runner.current.running:
        runner.current.stop()


def oppnda(ip, line: str):
    return ip.run_line_magic("oppnda", line)


def pngs(bundles) -> list[bytes]:
    return [b["image/png"] for b in bundles if "image/png" in b]


# ------------------------------------------------------------------------------- loading

def test_load_twice_and_reload(ip, capsys):
    assert "oppnda" in ip.magics_manager.magics["line"]
    ip.run_line_magic("load_ext", "oppnda_nb")
    assert "already loaded" in capsys.readouterr().out
    ip.run_line_magic("reload_ext", "oppnda_nb")
    assert "oppnda" in ip.magics_manager.magics["line"]
    assert isinstance(oppnda(ip, "status --total-ram-mb 4000"), magics.StatusTable)
    ip.run_line_magic("unload_ext", "oppnda_nb")
    assert "oppnda" not in ip.magics_manager.magics["line"]
    ip.run_line_magic("load_ext", "oppnda_nb")
    assert "oppnda" in ip.magics_manager.magics["line"]
    assert "already loaded" not in capsys.readouterr().out


def test_help_lists_the_sub_commands_and_options(ip):
    doc = ip.magics_manager.magics["line"]["oppnda"].__doc__
    for word in ("status", "panel", "run", "stop", "calibrate", "plot", "--eta", "--gamma",
                 "--overhead-mb", "--background", "--no-safety", "--total-ram-mb", "--group-by"):
        assert word in doc


# -------------------------------------------------------------------------------- status

def test_status_table_text_and_html(ip):
    table = oppnda(ip, "status --total-ram-mb 4000 --eta 0.5")
    text, page = repr(table), table._repr_html_()
    assert table.data["total_ram_mb"] == pytest.approx(4000)
    assert table.data["budget_mb"] == pytest.approx(2000 - table.data["others_mb"])
    for label in ("RAM source", "total RAM", "available", "budget", "kernel memory", "recommended workers"):
        assert label in text and label in page
    assert "4,000 MB" in text and "<table>" in page
    assert f"{table.data['recommended_workers']}" in text


def test_status_for_a_folder_counts_its_files(ip, fake):
    table = oppnda(ip, f"status {SAMPLE} --total-ram-mb 4000")
    assert f"for {len(fake.Run(SAMPLE).files):,} files" in repr(table)


def test_status_shows_warnings(ip):
    table = oppnda(ip, "status --total-ram-mb 300 --eta 0.1 --overhead-mb 400")
    assert table.data["warnings"]
    assert "warning" in repr(table) and "⚠" in table._repr_html_()


# ------------------------------------------------------------------------------- errors

@pytest.mark.parametrize("line, fragment", [
    ("bogus", "unknown sub-command 'bogus'"),
    ("run /no/such/folder", "does not exist"),
    (f"run {SAMPLE}/TEST_EpidemicRouter_1_180_10M_MessageStatsReport.txt", "is a file, not a folder"),
    ("run --eta 1.5", "--eta must be > 0 and <= 1"),
    ("run --eta abc", "--eta needs a number"),
    ("run --gamma 0", "--gamma must be > 0"),
    ("run --workers 0", "--workers must be >= 1"),
    ("run --workers two", "needs a whole number"),
    ("run --total-ram-mb -5", "--total-ram-mb must be > 0"),
    ("run --min-workers 4 --max-workers 2", "larger than --max-workers"),
    ("run --frobnicate", "unrecognized arguments"),
    ("run --config /no/such.json", "config file '/no/such.json' not found"),
    ("run --name 2x", "Python variable name"),
    ("status --workers 3", "does not take --workers"),
    ("stop now", "takes no folder"),
    ("plot --by ttl", "need a METRIC"),
])
def test_user_mistakes_are_usage_errors(ip, fake, line, fragment):
    with pytest.raises(UsageError) as info:
        oppnda(ip, line)
    assert fragment in str(info.value)


def test_argparse_errors_point_to_help(ip):
    with pytest.raises(UsageError, match=r"%oppnda\? shows the help"):
        oppnda(ip, "run --frobnicate")


def test_no_matching_files_is_a_usage_error(ip, fake, tmp_path):
    (tmp_path / "bad_one.txt").write_text("x")
    with pytest.raises(UsageError, match="no matching report files.*1 skipped.*bad name"):
        oppnda(ip, f"run {tmp_path}")


def test_oppnda_errors_from_the_runner_become_usage_errors(ip, fake, monkeypatch):
    def boom(*a, **k):
        raise magics.OppndaError("the pattern has no {seed} field: add one")

    monkeypatch.setattr(fake, "Run", boom)
    with pytest.raises(UsageError, match="no {seed} field"):
        oppnda(ip, "run")


def test_a_failing_run_is_a_usage_error_with_the_reason(ip, fake, shown):
    fake.fail = "cannot write the output folder"
    with pytest.raises(UsageError, match="the run failed: cannot write the output folder"):
        oppnda(ip, "run")


# ----------------------------------------------------------------------------- run (fake)

def test_run_blocking_puts_result_in_namespace_and_a_static_png(ip, fake, shown, capsys):
    ip.user_ns.pop("oppnda_result", None)
    assert oppnda(ip, "run") is None
    result = ip.user_ns["oppnda_result"]
    assert result is fake.current.result and result.job.status == "finished"
    assert pngs(shown), "the final memory plot must be displayed as a plain image/png"
    out = capsys.readouterr().out
    assert "Run finished" in out and "oppnda_result" in out
    run = fake.current
    assert run.folder == SAMPLE and run.manager is not None


def test_run_options_reach_the_run_and_the_manager(ip, fake, shown, tmp_path):
    config = tmp_path / "c.json"
    config.write_text("{}")
    oppnda(ip, f"run {SAMPLE} --config {config} --pattern '{{a}}_{{b}}' --group-by router,ttl --eta 0.6 "
               f"--gamma 2.5 --overhead-mb 30 --min-workers 1 --max-workers 3 --no-safety --total-ram-mb 5000 "
               f"--output {tmp_path / 'out'} --workers 2 --name res")
    run = fake.current
    assert run.config == str(config) and run.pattern == "{a}_{b}" and run.group_by == ["router", "ttl"]
    assert run.output == str(tmp_path / "out") and run.workers == 2
    m = run.manager
    assert (m.eta, m.gamma, m.overhead_mb, m.min_workers, m.max_workers, m.safety_enabled, m.total_ram_mb) == \
        (0.6, 2.5, 30.0, 1, 3, False, 5000.0)
    assert ip.user_ns["res"] is run.result


def test_run_in_a_kernel_shows_the_live_widget_box(ip, fake, shown, monkeypatch):
    monkeypatch.setattr(magics, "_in_kernel", lambda shell: True)
    oppnda(ip, "run")
    widget = [b for b in shown if "application/vnd.jupyter.widget-view+json" in b]
    assert widget, "the progress bar + label + image box is displayed"
    view = ip.magics_manager.registry["OppndaMagics"].last_view
    assert view.bar.bar_style == "success" and view.bar.value == view.bar.max
    assert shown.index(widget[0]) < len(shown) - 1 and pngs(shown)


def test_background_run_stop_and_one_at_a_time(ip, fake, shown, capsys):
    fake.per_file = 0.05
    ip.user_ns.pop("bg", None)
    oppnda(ip, "run --background --name bg")
    assert "in the background" in capsys.readouterr().out
    run = fake.current
    assert run.running
    with pytest.raises(UsageError, match="a run is in progress"):
        oppnda(ip, "run")
    p = panel_mod.Panel(SAMPLE)  # the panel sees the magic's run
    assert p.run is run
    with pytest.raises(magics.OppndaError, match="in progress"):
        p.start()
    oppnda(ip, "stop")
    assert "cancelled" in capsys.readouterr().out
    assert not run.running
    assert wait_until(lambda: "bg" in ip.user_ns, 10)
    assert ip.user_ns["bg"].job.status == "cancelled"
    assert p.view.wait(10) and p.view.bar.bar_style == "danger"
    p.close()
    oppnda(ip, "stop")
    assert "no run in progress" in capsys.readouterr().out


def test_background_run_stores_result_when_done(ip, fake, shown):
    ip.user_ns.pop("oppnda_result", None)
    oppnda(ip, "run --background")
    assert wait_until(lambda: "oppnda_result" in ip.user_ns, 20)


# --------------------------------------------------------------------------------- plot

def test_plot_memory_and_metric_of_the_last_run(ip, fake, shown):
    oppnda(ip, "run")
    shown.clear()
    oppnda(ip, "plot")
    assert len(pngs(shown)) == 1
    oppnda(ip, "plot delivery_prob")
    oppnda(ip, "plot delivery_prob --x ttl --by router --table ttl_average")
    assert len(pngs(shown)) == 3
    with pytest.raises(UsageError, match="no metric 'latency'.*delivery_prob"):
        oppnda(ip, "plot latency")
    with pytest.raises(UsageError, match="no table 'nope'"):
        oppnda(ip, "plot delivery_prob --table nope")
    with pytest.raises(UsageError, match="--x 'buffer' is not a parameter"):
        oppnda(ip, "plot delivery_prob --x buffer")


def test_plot_without_a_run(ip, monkeypatch):
    fresh = FakeRunner()
    monkeypatch.setattr(panel_mod, "_runner", lambda: fresh)
    monkeypatch.setattr(ip.magics_manager.registry["OppndaMagics"], "last_result", None)
    with pytest.raises(UsageError, match="no finished run yet"):
        oppnda(ip, "plot")


# -------------------------------------------------------------------------------- panel

def test_panel_command_displays_the_panel_with_the_options(ip, fake, shown):
    oppnda(ip, f"panel {SAMPLE} --eta 0.4 --gamma 2 --overhead-mb 20 --max-workers 3 --no-safety --name pnl")
    p = ip.user_ns["pnl"]
    assert isinstance(p, panel_mod.Panel)
    assert (p.eta.value, p.gamma.value, p.overhead.value, p.workers_range.value[1], p.safety.value) == \
        (0.4, 2.0, 20, 3, False)
    assert any("application/vnd.jupyter.widget-view+json" in b for b in shown)
    p.close()


def test_panel_and_run_default_to_the_sample(ip, fake, shown):
    oppnda(ip, "panel --name pnl2")
    assert ip.user_ns["pnl2"].folder.value == str(SAMPLE)
    ip.user_ns["pnl2"].close()


# --------------------------------------------------------------------------- real runner

def test_run_with_only_a_config_uses_the_configs_folder(ip, shown, tmp_path):
    import json
    import shutil

    reports = tmp_path / "my-sweep"
    reports.mkdir()
    for f in sorted(SAMPLE.glob("*_MessageStatsReport.txt"))[:8]:
        shutil.copy(f, reports)
    cfg = {  # OppNDA's format; a folder relative to the config file, as OppNDA users write it
        "folder": "my-sweep",
        "report_types": ["MessageStatsReport"],
        "filename_pattern": {"delimiter": "_", "components": {"scenario_name": 0, "router": 1, "seed": 2,
                                                              "ttl": 3, "buffer": 4, "report_type": 5}},
        "data_separator": ":",
        "average_groups": [{"group_by": ["router", "ttl"], "min_files": 2, "name": "ttl_average",
                            "output_template": "{report_type}_{router}_{ttl}_ttl_average.txt"}],
    }
    (tmp_path / "averager_config.json").write_text(json.dumps(cfg))
    oppnda(ip, f"run --config {tmp_path / 'averager_config.json'} --output {tmp_path / 'out'} --name cfgrun")
    result = ip.user_ns["cfgrun"]
    assert result.job.counts["processed"] == 8
    assert all(Path(o.path).parent == reports for o in result.outcomes)


def test_real_run_on_the_sample(ip, shown, tmp_path, capsys):
    from oppnda_nb import runner
    ip.user_ns.pop("real", None)
    oppnda(ip, f"run --total-ram-mb 6000 --output {tmp_path / 'out'} --name real")
    result = ip.user_ns["real"]
    assert result.status == "finished" and result.tables
    assert result is runner.current_run().result
    assert pngs(shown)
    assert "result in `real`" in capsys.readouterr().out
    assert (tmp_path / "out").is_dir()
    shown.clear()
    oppnda(ip, "plot")
    oppnda(ip, "plot delivery_prob")
    assert len(pngs(shown)) == 2


def test_real_errors_are_usage_errors(ip, tmp_path):
    (tmp_path / "notes.txt").write_text("not a report")
    with pytest.raises(UsageError, match="(?i)no matching report files"):
        oppnda(ip, f"run {tmp_path}")
    with pytest.raises(UsageError, match="group by 'nosuch': not a parameter.*router"):
        oppnda(ip, "run --group-by router,nosuch")
    with pytest.raises(UsageError, match="(?i)unbalanced braces"):
        oppnda(ip, "run --pattern '{a}_{b'")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UsageError, match="(?i)cannot read config"):
        oppnda(ip, f"run --config {bad}")


# ---------------------------------------------------------------------------- calibrate

def test_calibrate_measures_and_later_commands_use_it(ip, capsys):
    import psutil

    magic = ip.magics_manager.registry["OppndaMagics"]
    before = {c.pid for c in psutil.Process().children(recursive=True)}
    try:
        oppnda(ip, f"calibrate {SAMPLE} --total-ram-mb 6000")
        cal = ip.user_ns["oppnda_calibration"]
        assert cal.points and cal.applied
        out = capsys.readouterr().out
        assert "calibration on" in out and "the next %oppnda run uses" in out
        status = oppnda(ip, "status --total-ram-mb 6000")
        assert status.data["gamma"] == pytest.approx(cal.gamma)
        assert status.data["overhead_mb"] == pytest.approx(cal.overhead_mb)
        # explicit options win over the calibration
        assert oppnda(ip, "status --gamma 2 --total-ram-mb 6000").data["gamma"] == 2.0
        left = [c.pid for c in psutil.Process().children(recursive=True) if c.pid not in before]
        assert wait_until(lambda: not [c for c in psutil.Process().children(recursive=True)
                                       if c.pid not in before], 10), left
    finally:
        magic.calibration = None
    with pytest.raises(UsageError, match="does not exist"):
        oppnda(ip, "calibrate /no/such/dir")
    with pytest.raises(UsageError, match="does not take --pattern"):
        oppnda(ip, "calibrate --pattern x")


def test_real_background_run_and_stop(ip, tmp_path, capsys):
    import psutil

    from test_panel import big_folder

    folder = big_folder(tmp_path, 8)
    me = psutil.Process()
    before = {c.pid for c in me.children(recursive=True)}
    ip.user_ns.pop("bgreal", None)
    oppnda(ip, f"run {folder} --background --max-workers 1 --total-ram-mb 6000 --output {tmp_path / 'o'} --name bgreal")
    assert wait_until(lambda: any(c.pid not in before for c in me.children(recursive=True)), 30)
    with pytest.raises(UsageError, match="a run is in progress"):
        oppnda(ip, "run")
    oppnda(ip, "stop")
    assert "run cancelled" in capsys.readouterr().out
    assert wait_until(lambda: "bgreal" in ip.user_ns, 10)
    assert ip.user_ns["bgreal"].status == "cancelled"
    assert wait_until(lambda: not [c for c in me.children(recursive=True) if c.pid not in before], 15)
