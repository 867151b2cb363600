"""The shipped notebooks: committed clean, and each one runs top to bottom headless without errors.

Execution (marked ``slow``) copies notebooks/ into tmp and runs each notebook there with nbclient
(kernel python3, up to 300 s per cell), so anything a notebook writes lands in tmp. Widgets leave
no pixels in an nbclient run (see shared/docs/E2E.md), so the quickstart must also display a plain
``image/png`` and print the run summary: both are checked here, as is that its outputs land in
``oppnda-output/`` under the notebook's folder and nothing is written into the package.
oppnda-config.ipynb compares with OppNDA's own outputs byte for byte when the development data
(shared/data/oppnda-reference beside the checkout) is there, and says it skipped otherwise.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import e2e_support as es

NOTEBOOK_DIR = es.REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
if not NOTEBOOKS:
    pytest.skip("no notebooks in notebooks/ yet (notebooks/*.ipynb)", allow_module_level=True)

MACHINE_PATHS = ("/work/", "/root/", "/tmp/", "/home/")
# The run summary panel.wait() prints (RunResult.summary(): the pool's accounting line, then the
# averaging lines, then where the outputs went): every file processed, none skipped/failed/cancelled.
SUMMARY_RE = re.compile(
    r"Job finished: (?P<done>\d+) processed, 0 skipped, 0 failed, 0 cancelled of (?P<total>\d+) files "
    r"\(accounting OK\).*?^total: (?P<read>\d+) files read.*?^outputs: oppnda-output$", re.S | re.M)
from shared_data import REFERENCE  # noqa: E402
IDS = [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_notebook_is_clean(path: Path) -> None:
    """No outputs, no execution counts, no saved widget state, no paths of someone's machine."""
    import nbformat

    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert dirty == [], f"{path.name}: cells {dirty} carry outputs or execution counts (clear them)"
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state in metadata (clear it)"
    found = [p for p in MACHINE_PATHS if p in text]
    assert found == [], f"{path.name} mentions machine paths {found}"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernel is not python3"
    json.loads(text)  # plain JSON too (no merge-conflict markers etc.)


def _stderr(nb) -> list[str]:
    return ["".join(o.get("text", "")) for c in nb.cells for o in c.get("outputs", [])
            if o.get("output_type") == "stream" and o.get("name") == "stderr"]


def _package_files() -> set[str]:
    pkg = es.REPO_ROOT / "oppnda_nb"
    return {str(p.relative_to(pkg)) for p in pkg.rglob("*") if "__pycache__" not in p.parts}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_headless(path: Path, tmp_path: Path, kernel_env: dict[str, str]) -> None:
    """Every cell runs without an error output or anything on stderr; each notebook's own promise holds."""
    work = tmp_path / "nb"
    shutil.copytree(NOTEBOOK_DIR, work)
    env = dict(kernel_env)
    if REFERENCE.is_dir():
        env["OPPNDA_REFERENCE"] = str(REFERENCE)
    before = _package_files()
    nb = es.execute_notebook(work / path.name, env=env, timeout=300)
    problems = es.notebook_problems(nb)
    assert problems == [], f"{path.name}:\n" + "\n".join(problems)
    assert _stderr(nb) == [], f"{path.name} wrote to stderr"
    assert _package_files() == before, f"{path.name} wrote into the package folder"
    text = es.notebook_text(nb)
    if path.name == "quickstart.ipynb":
        _check_quickstart(nb, text, work)
    elif path.name == "oppnda-config.ipynb":
        if REFERENCE.is_dir():
            m = re.search(r"(\d+) of (\d+) of OppNDA's output files reproduced byte for byte", text)
            expected = len(list((REFERENCE / "expected").iterdir()))
            assert m and int(m.group(1)) == int(m.group(2)) == expected, text[-2000:]
        else:
            assert "comparison skipped" in text, text[-2000:]
        assert (work / "oppnda-config-demo" / "averager_config.json").is_file()
    elif path.name == "tuning.ipynb":
        assert "does not fit" in text, "the 1 GB troubleshooting example shows no warning"
        assert (work / "oppnda-output" / "virtual-1gb").is_dir()


def _check_quickstart(nb, text: str, work: Path) -> None:
    from oppnda_nb.averaging import sample_folder, select_files

    pngs = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert pngs >= 2, f"the executed quickstart shows {pngs} image/png outputs (memory plot + analysis plot)"
    m = SUMMARY_RE.search(text)
    assert m, f"no run summary in the quickstart's outputs:\n{text[-3000:]}"
    n_sample = len(select_files(sample_folder())[0])
    assert int(m["done"]) == int(m["total"]) == int(m["read"]) == n_sample, m.group(0)
    # one OppNDA-format file per router x TTL of the sample's MessageStatsReports (names: TEST_router_seed_ttl_...)
    groups = {tuple(p.name.split("_")[i] for i in (1, 3)) for p in sample_folder().glob("*_MessageStatsReport.txt")}
    out = work / "oppnda-output"
    written = sorted(p.name for p in out.glob("MessageStatsReport_*_ttl_average.txt"))
    assert written == sorted(f"MessageStatsReport_{r}_{t}_ttl_average.txt" for r, t in groups), written
    assert (out / "csv" / "ttl_average_MessageStatsReport.csv").is_file()
