"""binder/: the files mybinder.org builds from are valid, and (slow, opt-in) really launch the quickstart.

Fast checks: requirements.txt parses, every line is a range that admits the version installed here,
it covers pyproject's runtime dependencies (postBuild installs the package with --no-deps),
postBuild is an executable bash script with ``set -e``, runtime.txt names a supported Python, and
binder/README.md has a launch URL that opens the quickstart.

Slow check (``OPPNDA_BINDER_TEST=1``, marked ``slow``; 2-4 min, needs the package registry): build a
fresh venv from binder/requirements.txt + binder/postBuild only (no system site-packages, no
PYTHONPATH to this checkout), then execute notebooks/quickstart.ipynb with that venv's kernel
inside a memory cgroup limited to 2 GiB (what mybinder.org gives at most). The cgroup is a child of
this test's own cgroup; where it cannot be created the kernel's process tree is sampled instead and
its peak RSS must stay under 2 GiB (the test prints which of the two it used).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import e2e_support as es

BINDER = es.REPO_ROOT / "binder"
QUICKSTART = es.REPO_ROOT / "notebooks" / "quickstart.ipynb"
LIMIT_BYTES = 2 * 1024**3
LAUNCH_PATH = "urlpath=lab/tree/notebooks/quickstart.ipynb"


def _requirements() -> list:
    from packaging.requirements import Requirement

    reqs = []
    for raw in (BINDER / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            reqs.append(Requirement(line))
    return reqs


def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((es.REPO_ROOT / "pyproject.toml").read_text())


# ------------------------------------------------------------------------------------ fast checks

def test_requirements_are_ranges_that_admit_installed_versions() -> None:
    from importlib.metadata import PackageNotFoundError, version

    from packaging.utils import canonicalize_name

    reqs = _requirements()
    names = [canonicalize_name(r.name) for r in reqs]
    assert len(names) == len(set(names)), f"duplicate requirements: {names}"
    for r in reqs:
        ops = {s.operator for s in r.specifier}
        assert ">=" in ops and "<" in ops, f"{r}: give a range (>=lower,<upper), not {ops or 'nothing'}"
        try:
            installed = version(r.name)
        except PackageNotFoundError:
            pytest.fail(f"{r.name} is in binder/requirements.txt but not installed here")
        assert r.specifier.contains(installed, prereleases=True), f"{r} does not admit installed {installed}"
    for needed in ("jupyterlab", "jupyterlab-widgets", "ipykernel", "ipywidgets"):
        assert needed in names, f"binder/requirements.txt lacks {needed} (JupyterLab + widgets on Binder)"


def test_requirements_cover_runtime_dependencies() -> None:
    """postBuild uses --no-deps, so each pyproject dependency must be in requirements.txt."""
    from importlib.metadata import version

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    binder = {canonicalize_name(r.name): r for r in _requirements()}
    for dep in _pyproject()["project"]["dependencies"]:
        req = Requirement(dep)
        name = canonicalize_name(req.name)
        assert name in binder, f"pyproject dependency {dep!r} missing from binder/requirements.txt"
        installed = version(req.name)  # both ranges must at least share the version we develop with
        assert req.specifier.contains(installed) and binder[name].specifier.contains(installed), (dep, installed)


def test_postbuild_is_executable_bash_with_set_e() -> None:
    post = BINDER / "postBuild"
    text = post.read_text()
    assert text.startswith("#!/bin/bash\n")
    assert re.search(r"^set -[a-z]*e", text, re.M), "postBuild must stop at the first failing command"
    assert os.access(post, os.X_OK), "postBuild must have its executable bit set (chmod +x)"
    assert re.search(r"pip install\b.*--no-deps.*\s\.(\s|$)", text), "postBuild should install the package: pip install --no-deps ."
    subprocess.run(["bash", "-n", str(post)], check=True)  # syntax
    git = shutil.which("git")
    if git:  # the bit must be in git too, or a clone (Binder's) gets a non-executable file
        out = subprocess.run([git, "ls-files", "-s", "binder/postBuild"], cwd=es.REPO_ROOT,
                             capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            assert out.stdout.split()[0] == "100755", f"git has postBuild as {out.stdout.split()[0]}, not 100755"


def test_runtime_python_satisfies_requires_python() -> None:
    from packaging.specifiers import SpecifierSet

    m = re.fullmatch(r"python-(\d+\.\d+)\s*", (BINDER / "runtime.txt").read_text())
    assert m, "binder/runtime.txt must read like 'python-3.11'"
    assert SpecifierSet(_pyproject()["project"]["requires-python"]).contains(m.group(1) + ".0")


def test_readme_badge_opens_the_quickstart() -> None:
    text = (BINDER / "README.md").read_text()
    urls = re.findall(r"https://mybinder\.org/v2/gh/[^\s)]+", text)
    assert urls and all(LAUNCH_PATH in u for u in urls), urls
    path = urls[0].split("urlpath=lab/tree/", 1)[1]
    if not (es.REPO_ROOT / path).exists():
        pytest.skip(f"{path} not written yet")


# ------------------------------------------------------------------------------------ slow check

def _memory_cgroup(name: str, limit: int) -> tuple[Path, str] | None:
    """A child memory cgroup of this process's own one with ``limit`` bytes, or None if not allowed."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hier, controllers, path = line.split(":", 2)
        try:
            if "memory" in controllers.split(","):  # cgroup v1
                d = Path("/sys/fs/cgroup/memory") / path.lstrip("/") / name
                d.mkdir()
                try:
                    (d / "memory.limit_in_bytes").write_text(str(limit))
                except OSError:
                    d.rmdir()
                    raise
                return d, "v1"
            if hier == "0":  # cgroup v2: only where the memory controller is already delegated
                parent = Path("/sys/fs/cgroup") / path.lstrip("/")
                if "memory" in (parent / "cgroup.subtree_control").read_text().split():
                    d = parent / name
                    d.mkdir()
                    try:
                        (d / "memory.max").write_text(str(limit))
                    except OSError:
                        d.rmdir()
                        raise
                    return d, "v2"
        except OSError:
            continue
    return None


def _cgroup_report(d: Path, kind: str) -> dict:
    def field(fname: str, key: str) -> int:
        try:
            for ln in (d / fname).read_text().splitlines():
                k, _, v = ln.partition(" ")
                if k == key:
                    return int(v)
        except OSError:
            pass
        return -1

    peak_file = d / ("memory.max_usage_in_bytes" if kind == "v1" else "memory.peak")
    peak = int(peak_file.read_text()) if peak_file.exists() else -1
    oom = field("memory.oom_control" if kind == "v1" else "memory.events", "oom_kill")
    return {"peak_bytes": peak, "oom_kill": oom}


def _remove_cgroup(d: Path) -> list[int]:
    """Remove the cgroup once its processes are gone; kill (by PID) and return any leftovers."""
    left: list[int] = []
    deadline = time.monotonic() + 15
    while True:
        pids = [int(p) for p in (d / "cgroup.procs").read_text().split()]
        if not pids:
            break
        if time.monotonic() > deadline:
            left = pids
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
        time.sleep(0.2)
    for _ in range(50):
        try:
            d.rmdir()
            break
        except OSError:
            time.sleep(0.1)
    return left


class _TreeSampler(threading.Thread):
    """Peak RSS of this process's descendants (the kernel and its workers), sampled every 100 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._halt.is_set():
            total = 0
            for p in me.children(recursive=True):
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._halt.wait(0.1)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def build_binder_venv(where: Path) -> Path:
    """Copy the checkout (as Binder clones it), build a venv from binder/ only; return its python."""
    src = where / "repo"
    shutil.copytree(es.REPO_ROOT, src, ignore=shutil.ignore_patterns(
        ".git", "test-artifacts", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    venv = where / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PIP_USER")}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", VIRTUAL_ENV=str(venv), PYTHONNOUSERSITE="1",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    run = dict(cwd=src, env=env, check=True, timeout=1200)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], **run)
    subprocess.run(["./binder/postBuild"], **run)
    return py


def _venv_kernelspec(share: Path, py: Path, cgroup: Path | None) -> str:
    name = "oppnda-binder"
    kdir = share / "kernels" / name
    kdir.mkdir(parents=True)
    launch = f"exec {py} -m ipykernel_launcher -f \"$0\""
    if cgroup is not None:  # join the limited cgroup, then become the kernel (same PID)
        launch = f"echo $$ > {cgroup / 'cgroup.procs'} && {launch}"
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": ["/bin/sh", "-c", launch, "{connection_file}"],
        "display_name": "Binder venv", "language": "python"}))
    return name


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a cold pip download can take minutes
def test_fresh_binder_venv_runs_quickstart_in_2gb(tmp_path: Path, kernel_env: dict[str, str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    if os.environ.get("OPPNDA_BINDER_TEST") != "1":
        pytest.skip("builds a fresh venv from the package registry (2-4 min): set OPPNDA_BINDER_TEST=1")
    if not QUICKSTART.exists():
        pytest.skip("notebooks/quickstart.ipynb not written yet")
    result = run_notebook_in_binder_venv(QUICKSTART, tmp_path, kernel_env, monkeypatch)
    print(result["memory"])
    assert result["problems"] == [], "\n".join(result["problems"])
    assert es.has_png_output(result["nb"]), "the quickstart showed no image/png in the Binder venv"
    assert result["leftovers"] == [], f"processes left in the kernel's cgroup: {result['leftovers']}"
    mem = result["memory"]
    if mem["mode"] == "cgroup":
        assert mem["oom_kill"] == 0, mem
    else:
        assert mem["peak_bytes"] < LIMIT_BYTES, mem


def run_notebook_in_binder_venv(nb_src: Path, tmp_path: Path, kernel_env: dict[str, str],
                                monkeypatch: pytest.MonkeyPatch) -> dict:
    """Build the venv, check JupyterLab sees the widgets extension, run ``nb_src`` with its kernel."""
    py = build_binder_venv(tmp_path)
    env = {k: v for k, v in kernel_env.items() if k != "PYTHONPATH"}  # the venv's own install only
    env["PYTHONNOUSERSITE"] = "1"
    env["PATH"] = f"{py.parent}:{env.get('PATH', '')}"
    ext = subprocess.run([str(py.parent / "jupyter"), "labextension", "list"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert "@jupyter-widgets/jupyterlab-manager" in ext.stdout + ext.stderr, ext.stdout + ext.stderr
    where = subprocess.run([str(py), "-c", "import oppnda_nb; print(oppnda_nb.__file__)"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    assert str(tmp_path / "venv") in where, f"oppnda_nb imported from {where}, not from the venv"

    work = tmp_path / "nb"
    shutil.copytree(nb_src.parent, work)
    cg = _memory_cgroup(f"oppnda-binder-{os.getpid()}-{time.monotonic_ns()}", LIMIT_BYTES)
    share = tmp_path / "share"
    kernel = _venv_kernelspec(share, py, cg[0] if cg else None)
    monkeypatch.setenv("JUPYTER_PATH", str(share))
    sampler = _TreeSampler()
    sampler.start()
    leftovers: list[int] = []
    try:
        nb = es.execute_notebook(work / nb_src.name, env=env, kernel_name=kernel, timeout=300)
    finally:
        sampler.stop()
        if cg:
            report = _cgroup_report(*cg)
            leftovers = _remove_cgroup(cg[0])
    if cg:
        memory = {"mode": "cgroup", "cgroup": f"{cg[1]} {cg[0]}", "limit_bytes": LIMIT_BYTES, **report,
                  "sampled_rss_peak_bytes": sampler.peak}
    else:
        memory = {"mode": "sampled", "limit_bytes": LIMIT_BYTES, "peak_bytes": sampler.peak}
    return {"nb": nb, "problems": es.notebook_problems(nb), "memory": memory, "leftovers": leftovers,
            "module_path": where}
