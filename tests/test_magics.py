"""%oppnda in a real IPython shell, with the real job on tiny folders (terminal and notebook behaviour)."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from traitlets import TraitError

from conftest import SAMPLE, analysis_config, many_folder

from oppnda_nb import job, magics

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def notebook(monkeypatch):
    """Behave as in a kernel with a widget front end."""
    monkeypatch.setattr(magics, "has_widget_frontend", lambda shell: True)


def _magics(ip) -> magics.OppndaMagics:
    return ip.magics_manager.registry["OppndaMagics"]


def test_help_lists_the_options_of_options_py(ip):
    doc = ip.find_line_magic("oppnda").__doc__
    for flag in ("--eta", "--no-learn", "--oversize", "--file-timeout", "--background"):
        assert flag in doc


def test_config_sets_checked_defaults(ip, tiny_folder, capsys):
    ip.run_line_magic("config", "OppndaMagics.eta = 0.5")
    assert _magics(ip).eta == 0.5
    with pytest.raises(TraitError, match="--eta must be > 0 and <= 1"):
        _magics(ip).eta = 3
    status = ip.run_line_magic("oppnda", f"status {tiny_folder}")
    assert "η=0.5" in repr(status) and "24 files (0 skipped): recommended workers" in repr(status)
    assert "24 files" in status._repr_html_()
    status = ip.run_line_magic("oppnda", f"status {tiny_folder} --eta 0.7")  # an option wins over %config
    assert "η=0.7" in repr(status)


@pytest.mark.parametrize("line,fragment", [
    ("frobnicate", "unknown sub-command"),
    ("run --eta 2", "--eta must be > 0 and <= 1"),
    ("run --oversize maybe", "--oversize must be one of"),
    ("run /no/such/folder", "Input folder not found"),
    ("stop /tmp", "takes no folder"),
    ("plot --by router", "need a METRIC"),
    ("plot delivery_prob --kind pie", "--kind must be one of line, surface"),
    ("plot --config x.json --by ttl", "takes no METRIC, --by"),
    ("status --background", "does not take --background"),
    ("run --min-workers 4 --max-workers 2", "min_workers"),
])
def test_user_mistakes_are_usage_errors(ip, line, fragment):
    with pytest.raises(UsageError, match=fragment.replace("-", r"\-")):
        ip.run_line_magic("oppnda", line)


def test_terminal_run_prints_progress_summary_and_saves_the_plot(ip, tiny_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert ip.run_line_magic("oppnda", f"run {tiny_folder} --output {out} --no-learn --name res") is None
    text = capsys.readouterr().out
    assert "Job finished: 24 processed" in text
    assert f"memory plot saved to {out / 'memory.png'}" in text
    assert (out / "memory.png").read_bytes().startswith(b"\x89PNG")
    assert "<IPython" not in text and "VBox" not in text
    result = ip.user_ns["res"]
    assert result.exit_code == 0 and result.tables
    ip.run_line_magic("oppnda", "plot delivery_prob")
    assert f"plot saved to {out / 'delivery_prob_ttl_line.png'}" in capsys.readouterr().out
    assert (out / "delivery_prob_ttl_line.png").read_bytes().startswith(b"\x89PNG")


def test_terminal_panel_says_what_to_use_instead(ip, capsys):
    assert ip.run_line_magic("oppnda", "panel") is None
    text = capsys.readouterr().out
    assert "needs a notebook front end" in text and "%oppnda run" in text


def test_notebook_run_is_one_display_with_a_png_fallback(ip, notebook, tiny_folder, tmp_path):
    with capture_output() as cap:
        ip.run_line_magic("oppnda", f"run {tiny_folder} --output {tmp_path / 'out'}")
    new = [o for o in cap.outputs if not o.update]
    updates = [o for o in cap.outputs if o.update]
    assert len(new) == 1  # one output, updated in place at the end (not a second image)
    assert [u.transient["display_id"] for u in updates] == [new[0].transient["display_id"]]
    data = updates[0].data
    assert "application/vnd.jupyter.widget-view+json" in data and "image/png" in data
    assert "Job finished: 24 processed" in cap.stdout
    view = _magics(ip).last_view
    assert view.done and view.bar.bar_style == "success" and view.frames_drawn >= 1


def test_background_run_and_stop(ip, tmp_path, capsys):
    folder = many_folder(tmp_path, 150)
    ip.run_line_magic("oppnda", f"run {folder} --workers 1 --background --output {tmp_path / 'out'} --name bg")
    assert "in the background" in capsys.readouterr().out
    with pytest.raises(UsageError, match="in progress"):
        ip.run_line_magic("oppnda", f"run {folder} --output {tmp_path / 'other'}")
    ip.run_line_magic("oppnda", "stop")
    assert "run cancelled" in capsys.readouterr().out
    run = job.current_run()
    run.wait(30)
    assert ip.user_ns["bg"].exit_code == 1 and ip.user_ns["bg"].status == "cancelled"
    ip.run_line_magic("oppnda", "stop")
    assert "no run in progress" in capsys.readouterr().out


def test_calibrate(ip, tiny_folder, capsys):
    ip.run_line_magic("oppnda", f"calibrate {tiny_folder}")
    text = capsys.readouterr().out
    assert "calibration on 6 file(s)" in text
    assert ip.user_ns["oppnda_calibration"].points


def test_status_magic_imports_no_heavy_module(tiny_folder):
    """``%oppnda status`` plans with the catalog only: no pandas, matplotlib or ipywidgets."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from IPython.core.interactiveshell import InteractiveShell\n"
            "ip = InteractiveShell.instance()\n"
            "ip.run_line_magic('load_ext', 'oppnda_nb')\n"
            "ip.run_line_magic('oppnda', 'status ' + sys.argv[1])\n"
            "print('HEAVY', sorted(m for m in ('pandas', 'matplotlib', 'ipywidgets') if m in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", code, str(tiny_folder)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "HEAVY []" in r.stdout and "Error" not in r.stderr


# ------------------------------------------------------------------------------------- %oppnda plot

def sweep_folder(dest):
    """The sample's MessageStatsReports: 3 routers x 3 TTL x 3 buffers x 2 seeds (54 small files)."""
    dest.mkdir()
    for f in SAMPLE.glob("*_MessageStatsReport.txt"):
        shutil.copy(f, dest / f.name)
    return dest


@pytest.fixture
def tiny_run(ip, tiny_folder, tmp_path, capsys):
    out = tmp_path / "out"
    ip.run_line_magic("oppnda", f"run {tiny_folder} --output {out} --no-learn")
    capsys.readouterr()
    return ip.user_ns["oppnda_result"], out


def _plot(ip, line, capsys):
    ip.run_line_magic("oppnda", line)
    text = capsys.readouterr().out
    figs = _magics(ip).last_figures
    for path, _fig in figs:
        assert f"plot saved to {path}" in text and path.read_bytes().startswith(PNG)
    return figs


def test_plot_line_draws_the_averaged_means_and_cis(ip, tiny_run, capsys):
    result, out = tiny_run
    [(path, fig)] = _plot(ip, "plot delivery_prob --by ttl --hue router", capsys)
    assert path == out / "delivery_prob_ttl_line.png"
    table = result.tables["ttl_average"]
    rows = table[table["delivery_prob_mean"].notna()].sort_values("router")
    data = fig.oppnda_data.sort_values("hue")
    assert list(data["hue"]) == list(rows["router"]) and list(data["x"]) == list(rows["ttl"].astype(float))
    np.testing.assert_allclose(data["mean"], rows["delivery_prob_mean"])
    np.testing.assert_allclose(data["ci95"], rows["delivery_prob_ci95"])
    # --x is the same axis; --format adds other formats next to the PNG
    [(path, _)] = _plot(ip, "plot delivery_prob --x ttl --format png,svg", capsys)
    assert path.with_suffix(".svg").read_text().lstrip().startswith(("<?xml", "<svg"))


def test_plot_kinds_on_the_runs_and_the_curves(ip, tiny_run, capsys):
    result, out = tiny_run
    runs = pd.DataFrame([{**s.params, **s.scalars} for s in result.job.results if "delivery_prob" in s.scalars])
    [(path, fig)] = _plot(ip, "plot delivery_prob --kind violin", capsys)
    assert path.name == "violin_router_delivery_prob.png"
    for router, sub in runs.groupby("router"):
        got = fig.oppnda_data[fig.oppnda_data["group"] == router]["value"]
        np.testing.assert_allclose(sorted(got), sorted(sub["delivery_prob"]))
    figs = _plot(ip, "plot delivery_prob,overhead_ratio,latency_avg --kind heatmap", capsys)
    assert [p.name for p, _ in figs] == ["EpidemicRouter_correlation.png", "SprayAndWaitRouter_correlation.png"]
    sub = runs[runs["router"] == "EpidemicRouter"]
    metrics = ["delivery_prob", "overhead_ratio", "latency_avg"]
    np.testing.assert_allclose(figs[0][1].oppnda_data.to_numpy(), sub[metrics].astype(float).corr().to_numpy())
    [(path, fig)] = _plot(ip, "plot delivery_prob,overhead_ratio --kind pairplot", capsys)
    assert path.name == "pairplot.png" and len(fig.oppnda_data) == len(runs)
    [(path, fig)] = _plot(ip, "plot ContactTimesReport --kind distribution", capsys)
    curves = result.averaged.curves["average"]
    c = curves[(curves["report_type"] == "ContactTimesReport") & (curves["router"] == "EpidemicRouter")]
    d = fig.oppnda_data[fig.oppnda_data["hue"] == "EpidemicRouter"]
    np.testing.assert_allclose(d["mean"], c.sort_values("x")["y_mean"])
    [(path, _)] = _plot(ip, "plot BufferOccupancyReport --kind timeseries", capsys)
    assert path.name == "BufferOccupancyReport_timeseries.png"
    with pytest.raises(UsageError, match="ContactTimesReport has histogram curves, not timeseries"):
        ip.run_line_magic("oppnda", "plot ContactTimesReport --kind timeseries")
    with pytest.raises(UsageError, match="pairplot needs metrics separated by commas"):
        ip.run_line_magic("oppnda", "plot delivery_prob --kind pairplot")


@pytest.mark.parametrize("line,fragment", [
    ("plot delivery_prob --by nope", "No parameter 'nope' (x axis) in the tables of 'delivery_prob'; "
                                     "parameters: scenario_name, router, ttl, buffer, report_type"),
    ("plot delivery_prob --x nope", "parameters: scenario_name, router, ttl, buffer"),
    ("plot delivery_prob --hue nope", "No parameter 'nope' (lines)"),
    ("plot delivery_prob --by ttl --x buffer", "--by and --x both name the x axis"),
    ("plot no_such_metric", "No metric 'no_such_metric' in the averaged tables; metrics: "),
    ("plot delivery_prob --table nope", "No table 'nope'; the run has average, ttl_average, buffer_average"),
    ("plot delivery_prob --kind surface", "needs two numeric parameters that vary"),
])
def test_plot_mistakes_name_what_there_is(ip, tiny_run, line, fragment):
    with pytest.raises(UsageError) as err:
        ip.run_line_magic("oppnda", line)
    assert fragment in str(err.value)


def test_plot_surface_one_per_router_is_the_joint_mean(ip, tmp_path, capsys):
    folder = sweep_folder(tmp_path / "sweep")
    ip.run_line_magic("oppnda", f"run {folder} --output {tmp_path / 'out'} --no-learn")
    result = ip.user_ns["oppnda_result"]
    figs = _plot(ip, "plot delivery_prob --kind surface", capsys)
    assert [p.name for p, _ in figs] == [f"{r}_delivery_prob_3d_buffer_ttl.png" for r in
                                         ("EpidemicRouter", "FirstContactRouter", "SprayAndWaitRouter")]
    joint = result.tables["average"].set_index(["router", "buffer", "ttl"])["delivery_prob_mean"]
    data = figs[2][1].oppnda_data
    assert len(data) == 9 and not data["filled"].any()
    for _, r in data.iterrows():
        assert r["mean"] == pytest.approx(joint[("SprayAndWaitRouter", r["x"], r["y"])])
    # x defaults to a table that varies in one parameter only: lines per router over buffer
    [(path, fig)] = _plot(ip, "plot delivery_prob --by buffer", capsys)
    assert path.name == "delivery_prob_buffer_line.png" and len(fig.oppnda_data) == 9
    with pytest.raises(UsageError, match="also vary in router"):
        ip.run_line_magic("oppnda", "plot delivery_prob --by ttl --hue buffer")


def test_plot_config_runs_oppndas_whole_set(ip, tmp_path, capsys):
    folder = sweep_folder(tmp_path / "sweep")
    job.average_folder(folder=folder, output=tmp_path / "averaged", workers=2)
    config = analysis_config(tmp_path, folder, tmp_path / "averaged")
    ip.run_line_magic("oppnda", f"plot --config {config} --workers 2")
    text = capsys.readouterr().out
    assert "4 figure(s) to draw" in text and "drawing 4/4 figures · writing" in text  # the progress line
    assert "analysis finished: 4 figure(s) drawn, 0 failed" in text
    names = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert names == [f"{m}_{g}_line.png" for m in ("delivery_prob", "overhead_ratio") for g in ("buffer", "ttl")]
    assert ip.user_ns["oppnda_figures"].exit_code == 0


def test_notebook_plot_is_shown_inline_and_saved(ip, tiny_run, notebook):
    _result, out = tiny_run
    with capture_output() as cap:
        ip.run_line_magic("oppnda", "plot delivery_prob --kind violin")
    assert [o.data.get("image/png") is not None for o in cap.outputs] == [True]
    assert f"plot saved to {out / 'violin_router_delivery_prob.png'}" in cap.stdout
    assert (out / "violin_router_delivery_prob.png").read_bytes().startswith(PNG)
