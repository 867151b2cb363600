"""%oppnda in a real IPython shell, with the real job on tiny folders (terminal and notebook behaviour)."""
from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from traitlets import TraitError

from conftest import many_folder

from oppnda_nb import job, magics


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
    assert f"plot saved to {out / 'delivery_prob.png'}" in capsys.readouterr().out
    assert (out / "delivery_prob.png").is_file()


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
