"""The benchmark suite as one command: speed against the read floor, memory against the budget.

    python -m benchmarks [--quick] [--big] [--cases a,b,c,d] [--keep]
    python benchmarks/run.py [...]

Every case runs as whole processes, each measured from OUTSIDE: wall time, and the peak PSS of
the whole process tree (the job and its workers) sampled every 50 ms with psutil. Each corpus is
measured side by side with its read floor: a fresh Python process that merely reads the bytes of
every file of the corpus in a loop. Cases:

  a  the reference corpus 10x: every file of oppnda-reference/reports again under ten new seeds
     (7,150 files), ``python -m oppnda_nb average CONFIG --folder DIR --output OUT``: with
     ``--no-cache``, as a first run (which fills the summary cache) and again (cache filled),
     each the best of 3 runs alternating with the read floor and the read+parse floor (read each
     file, split its lines at ":", float() the values); ``--big`` adds the 30x corpus (21,450 files)
  b  the large run (one-reports/large-run/*.gz decompressed), ``python -m oppnda_nb run DIR
     --total-ram-mb 1000 --eta 0.5 --summary-json F``: budget, measured and predicted peak
  c  a generated ~600 MB DeliveredMessagesReport (the large run's body repeated with shifted IDs
     and times) at the same 500 MB budget
  d  re-runs in one warm Python process (job.Run) on the 10x corpus (``--big``: and the 30x): first
     run, unchanged re-run, +1 % new files, each result held until the next run replaces it (as
     ``result = Run(...).run()`` in a notebook); says whether the job used the summary cache
     (oppnda_nb.cache), what a cache lookup of every file costs on its own, and the list + stat
     floor (listing the folder and stat-ing every file: the least a re-run that notices a file
     rewritten in place can do)

``--oppnda-averager PATH`` (or ``$OPPNDA_AVERAGER``): OppNDA's own ``core/averager.py`` from an
OppNDA checkout; case a then runs it too, on a copy of the corpus, alternating with ours, and the
column "vs OppNDA" gives its seconds over ours. ``--quick``: a and b only. Children get a fresh ``OPPNDA_CACHE_DIR`` (no learned memory models,
no cached summaries from earlier runs). If the command line fails (an unfinished face), the case
is measured through ``job.Run`` in a fresh process instead and the row is marked ``*``.
Benchmarks, not tests: nothing here asserts on time. Shared data: ``../shared`` beside the
checkout, or ``$OPPNDA_SHARED``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gzip
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OPPNDA_SHARED") or Path(__file__).resolve().parents[2] / "shared")
REF = SHARED / "data" / "oppnda-reference"
ONE = SHARED / "data" / "one-reports"
LARGE = ONE / "large-run"
MB = 1024 * 1024
INTERVAL = 0.05
BUDGET_ARGS = ["--total-ram-mb", "1000", "--eta", "0.5"]
GENERATED_MB = 600

FLOOR_CODE = """\
import sys
buf = bytearray(1 << 20)
n = 0
for p in open(sys.argv[1], encoding="utf-8").read().splitlines():
    with open(p, "rb", buffering=0) as f:
        while True:
            k = f.readinto(buf)
            if not k:
                break
            n += k
print(n)
"""

#: the read + parse floor of key:value reports: read each file, split its lines at ":", float()
PARSE_FLOOR_CODE = """\
import sys
out = {}
for p in open(sys.argv[1], encoding="utf-8").read().splitlines():
    with open(p, "rb") as f:
        text = f.read().decode("utf-8")
    d = {}
    for line in text.split("\\n"):
        k, s, v = line.partition(":")
        if s:
            try:
                d[k.strip()] = float(v)
            except ValueError:
                pass
    out[p] = d
print(len(out))
"""
REPEATS = 3


# ------------------------------------------------------------------------------ measuring

@dataclass
class Measured:
    """One whole process (tree) measured from outside."""

    cmd: list[str]
    seconds: float
    peak_bytes: float
    rc: int
    stdout: str
    stderr: str
    samples: list[tuple[float, float]] = field(default_factory=list)  # (time.monotonic(), tree PSS)

    def peak_between(self, t0: float, t1: float) -> float:
        vals = [v for t, v in self.samples if t0 <= t <= t1]
        return max(vals, default=float("nan"))


def tree_pss(root: psutil.Process) -> float:
    """PSS of ``root`` and all its descendants, read now (shared pages counted once): the outside
    measure every benchmark here uses."""
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            total += p.memory_full_info().pss
        except psutil.Error:  # ended between listing and reading
            pass
    return total


def measure(cmd: list[str], env: dict[str, str], timeout: float = 900.0, cwd: Path = REPO) -> Measured:
    """Run ``cmd``; wall time and the peak PSS of its process tree, sampled every 50 ms from here."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, text=True)
        root = psutil.Process(proc.pid)
        samples: list[tuple[float, float]] = []
        try:
            while proc.poll() is None:
                tick = time.monotonic()
                samples.append((tick, tree_pss(root)))
                if time.perf_counter() - t0 > timeout:
                    raise TimeoutError(f"{timeout} s")
                time.sleep(max(0.0, INTERVAL - (time.monotonic() - tick)))
        except BaseException:
            for p in [*root.children(recursive=True), root]:
                try:
                    p.kill()
                except psutil.Error:
                    pass
            proc.wait()
            raise
        seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        return Measured(cmd, seconds, max((v for _, v in samples), default=0.0), proc.returncode,
                        out.read(), err.read(), samples)


def floor(files: list[Path], workdir: Path, env: dict[str, str], code: str = FLOOR_CODE) -> Measured:
    """The read floor: a fresh Python process reading every file's bytes in a loop (``code``:
    :data:`PARSE_FLOOR_CODE` for the read + parse floor of key:value reports)."""
    listing = workdir / "floor-files.txt"
    listing.write_text("\n".join(str(p) for p in files) + "\n", encoding="utf-8")
    return measure([sys.executable, "-c", code, str(listing)], env)


def best_of(commands: dict[str, object], repeats: int = REPEATS) -> dict[str, Measured]:
    """Each of ``commands`` (name -> function returning a Measured) run ``repeats`` times in turn,
    alternating, so a busy moment of the machine hits them alike; the fastest run of each."""
    best: dict[str, Measured] = {}
    for _ in range(repeats):
        for name, run in commands.items():
            m = run()
            if name not in best or (m.rc == 0 and m.seconds < best[name].seconds):
                best[name] = m
    return best


def _failure(m: Measured) -> str:
    lines = [ln for ln in m.stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit code {m.rc}"


def _ran(m: Measured) -> bool:
    """The job ran: exit code 0 (all done) or 1 (partial) — but not a crash (a traceback also gives 1)."""
    return m.rc == 0 or (m.rc == 1 and "Traceback (most recent call last)" not in m.stderr)


def job_process(cli: list[str], child: list[str], env: dict[str, str]) -> tuple[Measured, str | None]:
    """``python -m oppnda_nb <cli>``; if the command line itself breaks (exit code > 1), the same
    job through ``job.Run`` (``benchmarks/run.py --child <child>``). Returns the measure and why
    the fallback was used (None: the command line worked)."""
    m = measure([sys.executable, "-m", "oppnda_nb", *cli], env)
    if _ran(m):
        return m, None
    why = _failure(m)
    m2 = measure([sys.executable, str(Path(__file__).resolve()), "--child", *child], env)
    if not _ran(m2):
        raise RuntimeError(f"the job failed both ways: CLI: {why}; job.Run: {_failure(m2)}")
    return m2, why


# ------------------------------------------------------------------------------ corpora

def ten_x(dst: Path, copies: int) -> list[Path]:
    """Every reference report again under ``copies`` new seeds (seed s -> s*100+k)."""
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for src in sorted((REF / "reports").glob("TEST_*.txt")):
        parts = src.name.split("_")
        data = src.read_bytes()
        for k in range(copies):
            parts2 = list(parts)
            parts2[2] = str(int(parts[2]) * 100 + k)
            p = dst / "_".join(parts2)
            p.write_bytes(data)
            out.append(p)
    return out


def large_run(dst: Path) -> list[Path]:
    """The large run's reports, decompressed."""
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for gz in sorted(LARGE.glob("*.txt.gz")):
        p = dst / gz.name[:-3]
        with gzip.open(gz, "rb") as f, open(p, "wb") as g:
            shutil.copyfileobj(f, g, 1 << 20)
        out.append(p)
    return out


def large_run_folder() -> Path:
    """The large run decompressed once into ``$TMPDIR/oppnda-bench-large-run`` (reused by later calls)."""
    dst = Path(tempfile.gettempdir()) / "oppnda-bench-large-run"
    if len(list(dst.glob("*.txt"))) < len(list(LARGE.glob("*.txt.gz"))) or not dst.is_dir():
        large_run(dst)
    return dst


def delivered(dst: Path, target_mb: int = GENERATED_MB) -> list[Path]:
    """One DeliveredMessagesReport of about ``target_mb`` MB: the large run's body repeated, each copy
    with message IDs and times shifted past the previous copy (sorted, unique, same format)."""
    src = next(LARGE.glob("*_DeliveredMessagesReport.txt.gz"))
    with gzip.open(src, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    header, body = lines[0], [ln.split(" ", 2) for ln in lines[1:] if ln.strip()]
    rows = [(float(t), int(mid[1:]), rest) for t, mid, rest in body]
    span_t = max(r[0] for r in rows) + 1.0
    span_id = max(r[1] for r in rows) + 1
    dst.mkdir(parents=True, exist_ok=True)
    p = dst / src.name[:-3]
    with open(p, "w", encoding="utf-8", newline="\n") as g:
        g.write(header + "\n")
        k = 0
        while g.tell() < target_mb * MB:
            dt, di = k * span_t, k * span_id
            g.write("".join(f"{t + dt:.4f} M{i + di} {rest}\n" for t, i, rest in rows))
            k += 1
    return [p]


def _copy_of(src: Path):
    """A maker for a copy of one of the shared corpora (the run writes beside its inputs)."""
    def make(dst: Path) -> list[Path]:
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("averaged"))
        return sorted(p for p in dst.iterdir() if p.is_file())
    return make


def _config(corpus: Path, workdir: Path, name: str = "averager_config.json") -> Path:
    cfg = json.loads((REF / "averager_config.json").read_text())
    cfg["folder"] = str(corpus)
    path = workdir / name
    path.write_text(json.dumps(cfg, indent=2))
    return path


def _linked_copy(files: list[Path], dst: Path) -> None:
    """``files`` again in ``dst`` as hard links (OppNDA's averager writes its outputs beside its inputs)."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in files:
        os.link(f, dst / f.name)


# ------------------------------------------------------------------------------ children

def _child(argv: list[str]) -> int:
    """The job through ``job.Run`` in this (fresh) process: ``average CONFIG DIR OUT`` |
    ``run DIR OUT SUMMARY [TOTAL_MB ETA]`` | ``rerun CONFIG DIR OUTBASE RESULT_JSON``."""
    sys.path.insert(0, str(REPO))
    from oppnda_nb import job
    from oppnda_nb.resource_manager import ResourceManager

    what, *args = argv
    if what == "average":
        config, folder, out = args
        r = job.Run(folder, config=config, output=out, csv=False).run()
        print(r.summary())
        return r.exit_code
    if what == "run":
        folder, out, summary, total, eta = args
        r = job.Run(folder, manager=ResourceManager(total_ram_mb=float(total), eta=float(eta)), output=out).run()
        print(r.summary())
        Path(summary).write_text(json.dumps(r.summary_dict(), indent=2) + "\n")
        return r.exit_code
    if what == "rerun":
        return _rerun(*args)
    raise SystemExit(f"unknown child {what}")


def _rerun(config: str, folder: str, outbase: str, result_json: str) -> int:
    """Case d in one warm process: first run, unchanged re-run, +1 % new files; then the cost of a
    cache lookup of every file on its own (a filled SummaryCache in a temp file)."""
    from oppnda_nb import cache as cache_mod, job

    phases = []

    def one(name: str) -> job.RunResult:
        t0 = time.monotonic()
        r = job.Run(folder, config=config, output=f"{outbase}-{name}", csv=False).run()
        t1 = time.monotonic()
        phases.append({"phase": name, "t0": t0, "t1": t1, "seconds": t1 - t0,
                       "files": r.job.counts.get("processed", 0), "cached": r.job.counts.get("cached", 0),
                       "exit_code": r.exit_code})
        return r

    past = time.time() - 3600  # as a sweep's files are: not written in the last seconds (those are never cached)
    for p in Path(folder).iterdir():
        os.utime(p, (past, past))
    # each result is held until the next run replaces it, as a notebook's ``result = Run(...).run()``
    held = {"result": one("first run")}
    held["result"] = one("unchanged re-run")
    srcs = sorted(Path(folder).glob("TEST_*.txt"))
    extra = max(1, len(srcs) // 100)
    for src in srcs[:extra]:  # +1 %: copies under new seeds (s -> s + 900000)
        parts = src.name.split("_")
        parts[2] = str(int(parts[2]) + 900000)
        shutil.copyfile(src, src.with_name("_".join(parts)))
        os.utime(src.with_name("_".join(parts)), (past + 60, past + 60))
    held["result"] = last = one(f"+1 % new files (+{extra})")

    stat_floor = min(_list_and_stat(folder) for _ in range(REPEATS))
    files = [str(p) for p in sorted(Path(folder).glob("TEST_*.txt"))]
    by_path = {os.path.abspath(s.path): s for s in last.job.results}
    settings = job.averaging.prepare_config(config, None, None).settings()
    with tempfile.TemporaryDirectory() as d:
        c = cache_mod.SummaryCache(Path(d) / "lookup.sqlite", version=cache_mod.version_key(settings))
        keys = cache_mod.stat_keys(files)
        t = time.perf_counter()
        stored = c.put_many([(p, s, m, by_path[os.path.abspath(p)]) for p, s, m in keys
                             if os.path.abspath(p) in by_path], read_started_ns=time.time_ns() + cache_mod.RACY_NS)
        t_put = time.perf_counter() - t
        t = time.perf_counter()
        hits = c.get_many(cache_mod.stat_keys(files))
        t_get = time.perf_counter() - t
        db_bytes = c.stats()["bytes"]
    Path(result_json).write_text(json.dumps({
        "phases": phases, "stat_floor_s": stat_floor,
        "lookup": {"files": len(files), "stored": stored, "hits": len(hits),
                   "put_s": t_put, "stat_get_s": t_get, "db_bytes": db_bytes}}))
    return 0


def _list_and_stat(folder: str) -> float:
    """Seconds to list ``folder`` and stat every file in it: what any re-run must do at least to
    see that a file was rewritten in place (ONE rewrites a report without touching its folder)."""
    t = time.perf_counter()
    for entry in os.scandir(folder):
        os.stat(entry.path)
    return time.perf_counter() - t


# ------------------------------------------------------------------------------ the table

@dataclass
class Row:
    corpus: str
    what: str
    files: int
    nbytes: int
    m: Measured
    ratio: str = ""
    oppnda: str = ""


def _fmt_rows(rows: list[Row]) -> str:
    head = ["corpus", "what", "files", "MB", "seconds", "files/s", "MB/s", "peak tree MB", "x floor", "vs OppNDA"]
    # x floor: the job's time / the read floor's (case a: / the read floor's and / the read+parse floor's)
    body = []
    for r in rows:
        s = r.m.seconds
        body.append([r.corpus, r.what, f"{r.files:,}", f"{r.nbytes / MB:,.1f}" if r.nbytes else "-",
                     f"{s:.2f}" if s >= 0.1 else f"{s:.3f}",
                     f"{r.files / s:,.0f}" if s else "-", f"{r.nbytes / MB / s:,.1f}" if s and r.nbytes else "-",
                     f"{r.m.peak_bytes / MB:,.0f}" if r.m.peak_bytes else "-", r.ratio, r.oppnda])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(str(c).rjust(w) if i >= 2 else str(c).ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, body)])


def _machine() -> str:
    vm = psutil.virtual_memory()
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = "?"
    return (f"machine: {os.cpu_count()} CPUs (nproc), {vm.total / 2**30:.1f} GiB RAM ({vm.available / 2**30:.1f} "
            f"available), {platform.platform()}, Python {platform.python_version()}; "
            f"{_dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; checkout {REPO} @ {commit}")


def _oppnda_averager(given: str | None = None) -> Path | None:
    """OppNDA's own averager (``core/averager.py`` of an OppNDA checkout): ``given`` (``--oppnda-averager``
    or ``$OPPNDA_AVERAGER``), else one the shared data holds; nothing is fetched."""
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise SystemExit(f"OppNDA's averager not found at {path}")
        return path
    for p in SHARED.rglob("*.py"):
        try:
            if re.search(r"averag", p.name, re.I) and "oppnda" in p.read_text(errors="ignore").lower():
                return p
        except OSError:
            continue
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return _child(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="cases a and b only (under a minute)")
    ap.add_argument("--big", action="store_true", help="also the 30x reference corpus (21,450 files)")
    ap.add_argument("--cases", default=None, help="comma-separated subset of a,b,c,d,e (e: the other shared corpora)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    ap.add_argument("--oppnda-averager", metavar="PATH", default=os.environ.get("OPPNDA_AVERAGER"),
                    help="OppNDA's core/averager.py (from an OppNDA checkout; default $OPPNDA_AVERAGER): case a runs "
                         "it side by side with ours on a copy of each corpus, alternating, best of 3 each")
    args = ap.parse_args(argv)
    cases = set((args.cases or ("a,b" if args.quick else "a,b,c,d,e")).split(","))
    if not REF.is_dir() or not LARGE.is_dir():
        print(f"shared data not found under {SHARED} (set $OPPNDA_SHARED)", file=sys.stderr)
        return 2

    print(_machine())
    print(f"command: {Path(sys.executable).name} -m benchmarks {' '.join(argv)}".rstrip())
    opp = _oppnda_averager(args.oppnda_averager)
    oppnda = "n/a"
    print(f"OppNDA's averager: {str(opp) + ' (run in case a; vs OppNDA = its seconds / ours)' if opp else 'not given (--oppnda-averager PATH) -> column vs OppNDA: n/a'}")
    # the package's bytecode, as pip writes it when it installs (an editable checkout on a machine
    # that sets PYTHONDONTWRITEBYTECODE would otherwise compile it in every process, ~0.1 s)
    compiled = subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "oppnda_nb")],
                              capture_output=True).returncode == 0
    print(f"bytecode: {'compiled first (python -m compileall oppnda_nb), as an install does' if compiled else 'NOT compiled'}"
          f"{'; PYTHONDONTWRITEBYTECODE is set here' if os.environ.get('PYTHONDONTWRITEBYTECODE') else ''}")
    tmp = Path(tempfile.mkdtemp(prefix="oppnda-bench-"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env["OPPNDA_CACHE_DIR"] = str(tmp / "cache")
    rows: list[Row] = []
    notes: list[str] = []

    def pair(corpus: str, files: list[Path], job: Measured, fallback: str | None) -> None:
        nbytes = sum(p.stat().st_size for p in files)
        fl = floor(files, tmp, env)
        mark = "*" if fallback else ""
        rows.append(Row(corpus, "job" + mark, len(files), nbytes, job, f"{job.seconds / fl.seconds:.1f}x", oppnda))
        rows.append(Row(corpus, "read floor", len(files), nbytes, fl))
        if fallback:
            notes.append(f"{corpus}: * the command line failed ({fallback}); measured through job.Run in a "
                         f"fresh process instead")
        print(f"  done: {corpus} ({job.seconds:.1f} s, floor {fl.seconds:.2f} s)", file=sys.stderr, flush=True)

    try:
        st = measure([sys.executable, "-c", "import oppnda_nb.job"], env)
        notes.append(f"baseline: python + import oppnda_nb.job takes {st.seconds:.2f} s (in every job row's seconds)")
        if "a" in cases:
            for copies in ([10, 30] if args.big else [10]):
                d = tmp / f"ref{copies}x"
                files = ten_x(d, copies)
                cfg = _config(d, tmp)
                out = tmp / f"out-ref{copies}x"
                avg = [sys.executable, "-m", "oppnda_nb", "average", str(cfg), "--folder", str(d), "--output", str(out),
                       "--quiet"]
                fresh = {"n": 0}

                def first_run() -> Measured:  # a fresh cache folder each time: parse all, fill the cache
                    fresh["n"] += 1
                    return measure(avg, {**env, "OPPNDA_CACHE_DIR": str(tmp / f"cache-a{copies}-{fresh['n']}")})

                commands = {
                    "no cache": lambda: measure(avg + ["--no-cache"], env),
                    "first run (fills the cache)": first_run,
                    "again (cache filled)": lambda: measure(avg, {**env, "OPPNDA_CACHE_DIR": str(tmp / f"cache-a{copies}-1")}),
                    "read floor": lambda: floor(files, tmp, env),
                    "read+parse floor": lambda: floor(files, tmp, env, PARSE_FLOOR_CODE),
                }
                if opp is not None:  # on its own copy: it writes its averages into the input folder
                    _linked_copy(files, tmp / f"ref{copies}x-oppnda")
                    opp_cfg = _config(tmp / f"ref{copies}x-oppnda", tmp, "oppnda_averager_config.json")
                    commands["OppNDA's averager"] = lambda: measure([sys.executable, str(opp), str(opp_cfg)], env,
                                                                    cwd=opp.parent.parent)
                best = best_of(commands)
                nbytes = sum(p.stat().st_size for p in files)
                fl, pf = best["read floor"].seconds, best["read+parse floor"].seconds
                theirs = best.get("OppNDA's averager")
                for what, m in best.items():
                    if not _ran(m):
                        notes.append(f"a reference {copies}x, {what}: failed ({_failure(m)})")
                    ratio = "" if "floor" in what else f"{m.seconds / fl:.1f}x / {m.seconds / pf:.1f}x"
                    versus = ("" if "floor" in what or what.startswith("OppNDA") else oppnda if theirs is None
                              else f"{theirs.seconds / m.seconds:.2f}x faster")
                    rows.append(Row(f"a reference {copies}x", what if "floor" in what or what.startswith("OppNDA")
                                    else f"average, {what}", len(files), nbytes, m, ratio, versus))
                print(f"  done: a reference {copies}x (floor {fl:.2f} s, read+parse floor {pf:.2f} s)", file=sys.stderr,
                      flush=True)
                shutil.rmtree(d, ignore_errors=True)
                shutil.rmtree(tmp / f"ref{copies}x-oppnda", ignore_errors=True)
            notes.extend(_growth_note(rows))
        shared = [(f"e {sub}", _copy_of(ONE / sub)) for sub in ("sweep", "all-types", "large-heads") if (ONE / sub).is_dir()]
        for case, name, make in (("b", "b large run", large_run), ("c", f"c DeliveredMsgs {GENERATED_MB} MB", delivered),
                                 *(("e", n, m) for n, m in shared)):
            if case not in cases:
                continue
            d = tmp / f"corpus-{case}-{name.split()[-1]}"
            files = make(d)
            out, summ = tmp / f"out-{case}", tmp / f"summary-{case}.json"
            m, fb = job_process(["run", str(d), *BUDGET_ARGS, "--summary-json", str(summ), "--output", str(out),
                                 "--quiet"],
                                ["run", str(d), str(out), str(summ), BUDGET_ARGS[1], BUDGET_ARGS[3]], env)
            pair(name, files, m, fb)
            try:
                s = json.loads(summ.read_text())
                pred = s.get("planned_peak_mb", s.get("predicted_peak_mb"))
                notes.append(
                    f"{name}: budget {s.get('budget_mb', float('nan')):,.0f} MB; tree peak measured here "
                    f"{m.peak_bytes / MB:,.0f} MB; the run's own measured peak {s.get('measured_peak_mb') or float('nan'):,.0f} MB; "
                    f"predicted peak {pred if pred is not None else float('nan'):,.0f} MB "
                    f"({'planned_peak_mb' if 'planned_peak_mb' in s else 'predicted_peak_mb'}; the pool's "
                    f"predicted_peak_mb {s.get('predicted_peak_mb') or float('nan'):,.0f} MB); workers "
                    f"{s.get('workers')}; status {s.get('status')}, counts {s.get('counts')}")
                budget = s.get("budget_mb")
                if budget and m.peak_bytes / MB > budget:
                    notes.append(f"{name}: OVER BUDGET: the tree peak is {m.peak_bytes / MB / budget:.1f}x the budget")
            except (OSError, ValueError) as exc:
                notes.append(f"{name}: no summary JSON ({exc})")
            shutil.rmtree(d, ignore_errors=True)
        for copies in ([10, 30] if args.big else [10]) if "d" in cases else []:
            corpus = f"d warm {copies}x"
            d = tmp / f"rerun{copies}x"
            files = ten_x(d, copies)
            cfg = _config(d, tmp)
            res = tmp / f"rerun{copies}x.json"
            cache_db = tmp / f"cache-d{copies}" / "summaries.sqlite"
            m = measure([sys.executable, str(Path(__file__).resolve()), "--child", "rerun", str(cfg), str(d),
                         str(tmp / f"out-rerun{copies}x"), str(res)], {**env, "OPPNDA_CACHE_DIR": str(cache_db.parent)})
            if m.rc != 0 or not res.exists():
                notes.append(f"{corpus} re-runs: failed ({_failure(m)})")
            else:
                data = json.loads(res.read_text())
                nbytes = sum(p.stat().st_size for p in files)
                used = any(ph.get("cached") for ph in data["phases"])
                fl = floor(files, tmp, env)
                first = data["phases"][0]["seconds"]
                for ph in data["phases"]:
                    pm = Measured(m.cmd, ph["seconds"], m.peak_between(ph["t0"], ph["t1"]), 0, "", "")
                    n = ph["files"]
                    rows.append(Row(corpus, ph["phase"], n, nbytes * n // max(1, len(files)), pm,
                                    f"{pm.seconds / fl.seconds:.1f}x", oppnda))
                    faster = f" ({first / ph['seconds']:.1f}x faster)" if ph["seconds"] < first else ""
                    notes.append(f"{corpus} {ph['phase']}: {ph['seconds']:.2f} s = {ph['seconds'] / first:.2f}x the first "
                                 f"run{faster} ({ph.get('cached', 0):,} of {n:,} files from the cache)")
                rows.append(Row(corpus, "read floor", len(files), nbytes, fl))
                stat_floor = data["stat_floor_s"]
                rows.append(Row(corpus, "list + stat floor", len(files), 0,
                                Measured(m.cmd, stat_floor, 0.0, 0, "", "")))
                notes.append(f"{corpus} list + stat floor (in the warm process, best of {REPEATS}): {stat_floor:.3f} s, "
                             f"the least any re-run that notices a file rewritten in place takes; the first run is "
                             f"{first / stat_floor:.0f}x that")
                lk = data["lookup"]
                if used:
                    from_db = _cache_stats(cache_db)
                    notes.append(f"{corpus} re-runs: the job used the summary cache ({from_db}).")
                else:
                    notes.append(f"{corpus} re-runs: the job does not use the summary cache yet, so these rows measure "
                                 "NO cache (every run reads every file).")
                notes.append(f"{corpus} cache alone: stat + SummaryCache.get_many of all {lk['files']:,} files "
                             f"{lk['stat_get_s']:.2f} s ({lk['hits']:,} hits); storing them (put_many) "
                             f"{lk['put_s']:.2f} s; database {lk['db_bytes'] / MB:.1f} MB (in the warm process, after the runs).")
            shutil.rmtree(d, ignore_errors=True)
    finally:
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(_fmt_rows(rows))
    print()
    for n in notes:
        print("- " + n)
    print("- peak tree MB: PSS of the whole process tree sampled from outside every 50 ms; seconds: wall time "
          "of the whole process incl. Python start and imports; files are in the page cache for both job and floor.")
    return 0


def _growth_note(rows: list[Row]) -> list[str]:
    """How the job's peak memory grows with the number of files (no-cache rows of case a, 10x and
    30x): the kernel keeps every file's summary until it averages."""
    runs = sorted((r.files, r.m.peak_bytes) for r in rows if r.corpus.startswith("a ") and r.what == "average, no cache")
    if len(runs) < 2 or runs[-1][0] == runs[0][0]:
        return []
    (n0, p0), (n1, p1) = runs[0], runs[-1]
    from oppnda_nb.job import RESULT_BYTES

    return [f"a memory per file (no cache): peak tree {p0 / MB:,.0f} MB at {n0:,} files, {p1 / MB:,.0f} MB at {n1:,}: "
            f"{(p1 - p0) / (n1 - n0) / 1024:.1f} KB more per file (the kernel keeps each file's summary until it "
            f"averages; the plan counts {RESULT_BYTES / 1024:.0f} KB per key:value file)"]


def _cache_stats(db: Path) -> str:
    sys.path.insert(0, str(REPO))
    import sqlite3

    con = sqlite3.connect(str(db))
    try:
        n, v = con.execute("SELECT COUNT(*), COUNT(DISTINCT version) FROM summaries").fetchone()
    except sqlite3.Error as exc:
        return f"database {db.name}: {exc}"
    finally:
        con.close()
    return f"{n:,} entries, {v} version(s), {db.stat().st_size / MB:.1f} MB"


if __name__ == "__main__":
    sys.exit(main())
