"""Benchmark: memory and speed of one worker summarising one report, measured from outside.

For each file, a fresh worker (forkserver, pandas and the job's worker modules preloaded, as the pool's
workers are) runs ``summarize_path`` (or ``read_report`` with ``--read``); this process samples the
worker's PSS and RSS every 25 ms and prints: type, size MB, baseline MB (after imports, before the
file), peak MB, peak-baseline, (peak-baseline)/size (gamma), seconds, MB/s. The registry's priors
(``ReportSpec.gamma`` / ``overhead_mb``) are set from these figures.

    PYTHONPATH=$PWD python benchmarks/bench_worker_memory.py                 # the shared large run
    PYTHONPATH=$PWD python benchmarks/bench_worker_memory.py --read FILE...  # read_report instead
    PYTHONPATH=$PWD python benchmarks/bench_worker_memory.py --lean FILE...  # lean mode
    PYTHONPATH=$PWD python benchmarks/bench_worker_memory.py --scale 20 FILE... # synthetic: data lines x20
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import sys
import time
from pathlib import Path

import psutil

MB = 1024 * 1024


def scaled_copy(path: str, k: int, dst: Path) -> str:
    """A copy of the report ``path`` in ``dst`` (same name) with its data lines repeated ``k`` times
    and its leading '#' lines once: a synthetic large file of the same shape. In snapshot reports
    (lines ``[t]``) repetition i shifts every marker by i * (last time + first step) so that times keep
    increasing as in a longer run (plain decimals as ONE writes them); other lines are copied as they are."""
    with open(path, "rb") as fh:
        data = fh.read()
    n = 0
    while n < len(data) and data.startswith(b"#", n):
        n = data.find(b"\n", n) + 1 or len(data)
    body = data[n:]
    marks = list(_MARK.finditer(body))
    out = dst / Path(path).name
    with open(out, "wb") as fh:
        fh.write(data[:n])
        if not marks:
            for _ in range(k):
                fh.write(body)
        else:
            times = [float(m.group(1)) for m in marks]
            span = times[-1] + (times[1] - times[0] if len(times) > 1 else times[0] or 1.0)
            for i in range(k):
                if i == 0:
                    fh.write(body)
                    continue
                pos = 0
                for m, t in zip(marks, times):
                    fh.write(body[pos:m.start(1)])
                    fh.write(_plain(t + i * span).encode())
                    pos = m.end(1)
                fh.write(body[pos:])
    return str(out)


_MARK = re.compile(rb"^\[(-?[0-9]+(?:\.[0-9]*)?)\]", re.M)


def _plain(t: float) -> str:
    """``t`` as ONE writes a snapshot time: an integer without a dot, else the shortest decimal."""
    return str(int(t)) if t == int(t) else repr(t)


def _default() -> list[str]:
    """Every report of the large run (decompressed from the shared data on first use)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.run import large_run_folder

    return sorted(str(p) for p in large_run_folder().glob("*.txt"))


def _work(conn, path: str, mode: str, modules: list[str]) -> None:
    """Worker: wait for 'go', run the work on ``path``, send back the seconds (or the error)."""
    import importlib

    from oppnda_nb import reports

    for m in modules:               # as the pool's workers do before their first file
        importlib.import_module(m)
    conn.send("ready")
    conn.recv()
    t0 = time.perf_counter()
    try:
        if mode == "read":
            rep = reports.read_report(path)
            n = len(rep.frame)
        else:
            s = reports.summarize_path(path, lean=(mode == "lean"))
            n = len(s.scalars)
        conn.send(("ok", time.perf_counter() - t0, n))
    except Exception as exc:  # report it, the benchmark goes on
        conn.send(("error", time.perf_counter() - t0, str(exc)[:200]))


def _mem(proc: psutil.Process) -> tuple[float, float]:
    info = proc.memory_full_info()
    return info.pss / MB, info.rss / MB


def measure(ctx, path: str, mode: str, modules: list[str], interval: float = 0.025) -> dict:
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_work, args=(child, path, mode, modules))
    p.start()
    try:
        proc = psutil.Process(p.pid)
        assert parent.recv() == "ready"
        time.sleep(0.2)
        base = [_mem(proc) for _ in range(4)]
        base_pss = min(b[0] for b in base)
        base_rss = min(b[1] for b in base)
        parent.send("go")
        peak_pss, peak_rss = base_pss, base_rss
        while not parent.poll(interval):
            try:
                pss, rss = _mem(proc)
            except psutil.NoSuchProcess:
                break
            peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
        status, secs, detail = parent.recv()
    finally:
        p.join(10)
        if p.is_alive():
            p.kill()
            p.join()
    size = os.path.getsize(path) / MB
    from oppnda_nb.reports import detect_report_type
    return {"type": detect_report_type(path), "size": size, "base": base_pss, "peak": peak_pss,
            "above": peak_pss - base_pss, "rss_above": peak_rss - base_rss,
            "gamma": (peak_pss - base_pss) / size if size else float("nan"),
            "secs": secs, "mbs": size / secs if secs else float("nan"), "status": status, "detail": detail}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", default=None)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--read", action="store_true", help="read_report (whole tidy frame) instead of summarize_path")
    g.add_argument("--lean", action="store_true", help="summarize_path(lean=True)")
    ap.add_argument("--alone", action="store_true",
                    help="do not import pandas here (by default this process imports it as a run's kernel does, "
                         "so the libraries' pages are shared as in a pool: PSS splits them among the processes)")
    ap.add_argument("--scale", type=int, default=1, metavar="K",
                    help="SYNTHETIC: measure a temporary copy of each file with its data lines repeated K times "
                         "(header once); for line tables whose real files are small")
    args = ap.parse_args(argv)
    if not args.alone:
        import pandas  # noqa: F401  (the kernel of a run has it: it reads the summaries and averages)
        import oppnda_nb.reports.registry  # noqa: F401
    from oppnda_nb.job import WORKER_MODULES  # what the pool's forkserver preloads and its workers import first

    files = args.files or _default()
    mode = "read" if args.read else "lean" if args.lean else "summary"
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["pandas", "numpy", *WORKER_MODULES])  # as the pool's forkserver
    print(f"# mode={mode} start={method} sampling every 25 ms; MB = 2**20; PSS (RSS above baseline in []); "
          f"{'alone' if args.alone else 'next to a kernel with pandas, as in a pool'}")
    print(f"{'type':34s} {'size':>8s} {'base':>7s} {'peak':>7s} {'above':>7s} {'[rss]':>7s} {'gamma':>6s} "
          f"{'s':>6s} {'MB/s':>7s}")
    tmp = None
    if args.scale > 1:
        import tempfile
        tmp = tempfile.TemporaryDirectory(prefix="oppnda-scaled-")
        files = [scaled_copy(f, args.scale, Path(tmp.name)) for f in files]
        print(f"# SYNTHETIC: data lines of each file repeated {args.scale} times")
    for f in files:
        r = measure(ctx, f, mode, WORKER_MODULES)
        flag = "" if r["status"] == "ok" else f"  ERROR {r['detail']}"
        print(f"{r['type']:34s} {r['size']:8.1f} {r['base']:7.1f} {r['peak']:7.1f} {r['above']:7.1f} "
              f"{r['rss_above']:7.1f} {r['gamma']:6.2f} {r['secs']:6.2f} {r['mbs']:7.1f}{flag}", flush=True)
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
