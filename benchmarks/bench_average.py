"""Benchmark: the OppNDA-style averaging job on a 10x corpus of the reference reports.

Builds ~7,150 files in a temp dir (each of the 715 reference MessageStatsReports again under
ten new seeds), runs the job as a whole process (``python -m oppnda_nb average CONFIG``), checks the
outputs are identical to an in-process sequential reference run, and reports per-file time
against OppNDA's 0.5 ms/file and against merely reading the files' bytes in one process.
Then runs the job again through the pool with its batching of small files on and off
(``average_folder(..., batch=True/False)``, alternating, each a whole process) side by side.

    python benchmarks/bench_average.py [--repeat 3] [--workers N] [--keep]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REF = Path(__file__).resolve().parents[2] / "shared" / "data" / "oppnda-reference"
OPPNDA_MS_PER_FILE = 0.5
REPO = Path(__file__).resolve().parents[1]


def make_corpus(dst: Path, copies: int = 10) -> list[Path]:
    """Every reference file again under ``copies`` new seeds (seed s -> s*100+k)."""
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for src in sorted((REF / "reports").glob("TEST_*.txt")):
        parts = src.name.split("_")
        for k in range(copies):
            parts2 = list(parts)
            parts2[2] = str(int(parts[2]) * 100 + k)
            p = dst / "_".join(parts2)
            shutil.copyfile(src, p)
            out.append(p)
    return out


CPU: list[float] = []


def _run(cmd: list[str]) -> tuple[float, str]:
    """Wall time of a whole process; its CPU time (incl. its worker processes) goes to CPU."""
    import resource

    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
    if r.returncode != 0:
        raise SystemExit(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return dt, r.stdout


def _in_job_seconds(stdout: str) -> float | None:
    """The job's own timer from its "total: ..., 0.31 s, 2 worker(s)" line."""
    for line in stdout.splitlines():
        if line.startswith("total:"):
            try:
                return float(line.rsplit(" s,", 1)[0].rsplit(",", 1)[1])
            except (IndexError, ValueError):
                return None
    return None


def _listing(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None, help="default: memory-aware")
    ap.add_argument("--keep", action="store_true", help="keep the temp corpus")
    args = ap.parse_args(argv)
    if not (REF / "reports").is_dir():
        print(f"reference data not found at {REF}", file=sys.stderr)
        return 1
    sys.path.insert(0, str(REPO))
    from oppnda_nb.averaging import average_folder

    tmp = Path(tempfile.mkdtemp(prefix="oppnda-bench-"))
    try:
        corpus = tmp / "reports"
        files = make_corpus(corpus)
        n = len(files)
        nbytes = sum(p.stat().st_size for p in files)
        cfg = json.loads((REF / "averager_config.json").read_text())
        cfg["folder"] = str(corpus)
        cfg_path = tmp / "averager_config.json"
        cfg_path.write_text(json.dumps(cfg, indent=2))
        print(f"corpus: {n} files, {nbytes / 1e6:.1f} MB in {corpus}")

        ref_out = tmp / "ref_out"
        t0 = time.perf_counter()
        ref = average_folder(str(cfg_path), output=ref_out, workers=1)
        dt = time.perf_counter() - t0
        print(f"reference run (in-process, sequential, already imported): {dt:.2f} s = {dt / n * 1e3:.4f} ms/file, "
              f"{len(ref.written)} files written")
        expected = _listing(ref_out)

        wflag = [] if args.workers is None else ["--workers", str(args.workers)]
        how = "python -m oppnda_nb average"

        def job_cmd(out: Path) -> list[str]:
            return [sys.executable, "-m", "oppnda_nb", "average", str(cfg_path), "--output", str(out), *wflag]

        read_cmd = [sys.executable, "-c",
                    "import os,sys; d=sys.argv[1]; t=0\n"
                    "for e in sorted(os.scandir(d), key=lambda e: e.name):\n"
                    "    with open(e.path,'rb') as f: t+=len(f.read())\n"
                    "print(t)", str(corpus)]
        start_cmd = [sys.executable, "-c", "import oppnda_nb.averaging"]

        job_t, read_t, start_t, in_job, job_cpu = [], [], [], [], []
        for i in range(args.repeat):
            out = tmp / f"out{i}"
            dt, stdout = _run(job_cmd(out))
            job_t.append(dt)
            job_cpu.append(CPU[-1])
            got = _listing(out)
            if got != expected:
                print("MISMATCH: outputs differ from the reference run", file=sys.stderr)
                return 1
            for line in stdout.splitlines():
                if line.startswith("total:"):
                    # "..., 0.31 s, 2 worker(s)"
                    try:
                        in_job.append(float(line.rsplit(" s,", 1)[0].rsplit(",", 1)[1]))
                    except (IndexError, ValueError):
                        pass
                    last_total = line
            read_t.append(_run(read_cmd)[0])
            start_t.append(_run(start_cmd)[0])
        med = statistics.median
        job, rd, st = med(job_t), med(read_t), med(start_t)
        print(f"job command: {how}")
        print(f"job summary line: {last_total}")
        print(f"outputs identical to the reference run: yes ({len(expected)} files), {args.repeat} repeats")
        print(f"whole process (median): {job:.3f} s = {job / n * 1e3:.4f} ms/file "
              f"-> {OPPNDA_MS_PER_FILE / (job / n * 1e3):.1f}x faster than OppNDA's {OPPNDA_MS_PER_FILE} ms/file")
        if in_job:
            j = med(in_job)
            print(f"job alone, in-process timer (median): {j:.3f} s = {j / n * 1e3:.4f} ms/file "
                  f"-> {OPPNDA_MS_PER_FILE / (j / n * 1e3):.1f}x faster than OppNDA")
        print(f"CPU time of the job process + its workers (median): {med(job_cpu):.3f} s "
              f"= {med(job_cpu) / n * 1e3:.4f} ms/file (robust to other load on the machine)")
        print(f"python + import oppnda_nb.averaging (median): {st:.3f} s")
        print(f"whole process minus startup/import: {job - st:.3f} s = {(job - st) / n * 1e3:.4f} ms/file "
              f"-> {OPPNDA_MS_PER_FILE / ((job - st) / n * 1e3):.1f}x faster than OppNDA")
        print(f"merely reading the bytes in one process (median, incl. python startup): {rd:.3f} s = "
              f"{rd / n * 1e3:.4f} ms/file; job / read = {job / rd:.1f}x")

        # the pool with and without its batching of small files, alternating, whole processes
        workers = "None" if args.workers is None else str(args.workers)
        def pool_cmd(out: Path, batch: bool) -> list[str]:
            return [sys.executable, "-c",
                    "import sys; from oppnda_nb.averaging import average_folder\n"
                    f"r = average_folder(sys.argv[1], output=sys.argv[2], workers={workers}, batch={batch})\n"
                    "print(chr(10).join(r.summary_lines()))", str(cfg_path), str(out)]
        side = {True: ([], [], []), False: ([], [], [])}
        for i in range(args.repeat):
            for batch in (True, False):
                out = tmp / f"pool{i}_{batch}"
                dt, stdout = _run(pool_cmd(out, batch))
                if _listing(out) != expected:
                    print(f"MISMATCH: outputs differ from the reference run (batch={batch})", file=sys.stderr)
                    return 1
                wall, cpu, inj = side[batch]
                wall.append(dt)
                cpu.append(CPU[-1])
                s_in = _in_job_seconds(stdout)
                if s_in is not None:
                    inj.append(s_in)
        (bw, bc, bi), (uw, uc, ui) = side[True], side[False]
        print(f"pool with batching vs without (whole process, median of {args.repeat}, alternating, same outputs):")
        print(f"  wall {med(bw):.3f} s = {med(bw) / n * 1e3:.4f} ms/file  vs  {med(uw):.3f} s = "
              f"{med(uw) / n * 1e3:.4f} ms/file  -> batching {med(uw) / med(bw):.1f}x faster")
        if bi and ui:
            print(f"  job alone (in-process timer) {med(bi):.3f} s vs {med(ui):.3f} s -> {med(ui) / med(bi):.1f}x")
        print(f"  CPU (process + workers) {med(bc):.3f} s vs {med(uc):.3f} s -> {med(uc) / med(bc):.1f}x")
        return 0
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
