"""Benchmark: how well a calibrated model predicts a run's peak memory (the issue's 20 % goal).

For each shared corpus: calibrate a fresh ResourceManager on an 8-file sample of the folder
(``calibration.calibrate_folder``), run every file through the pool with 2 workers, and print
the run's predicted vs measured peak. Then the large-file case: EventLogReports of 10-120 MB
(made by repeating the shipped 1 MB head) predicted after calibrating on 1-8 MB files, and after
calibrating on the folder itself.

    python benchmarks/bench_calibration.py
"""
from __future__ import annotations

import glob
import tempfile
from pathlib import Path

from oppnda_nb import calibration as cal
from oppnda_nb.pool import Job
from oppnda_nb.resource_manager import ResourceManager

ONE = Path(__file__).resolve().parents[2] / "shared" / "data" / "one-reports"


def eventlogs(folder: Path, sizes_mb: list[int]) -> None:
    """EventLogReports of about ``sizes_mb`` MB each, from the real 1 MB head."""
    head = next((ONE / "large-heads").glob("*_EventLogReport.txt")).read_bytes()
    head = head[: head.rfind(b"\n") + 1]
    folder.mkdir(parents=True, exist_ok=True)
    for n in sizes_mb:
        with open(folder / f"TEST_EpidemicRouter_{n}_240_5M_EventLogReport.txt", "wb") as f:
            for _ in range(n):
                f.write(head)


def predict_and_run(label: str, calibrate_on: Path, run_on: Path, sample: int = 8) -> None:
    rm = ResourceManager()
    c = cal.calibrate_folder(calibrate_on, rm, sample=sample)
    files = sorted(glob.glob(str(run_on / "*.txt")))
    r = Job(files, cal.read_report_work, (), rm, workers=2, sample_interval=0.1).run()
    err = (r.predicted_peak_mb - r.measured_peak_mb) / r.measured_peak_mb * 100
    print(f"{label}: {len(files)} files, γ {c.gamma:.2f}, M_overhead {c.overhead_mb:.0f} MB; run peak predicted "
          f"{r.predicted_peak_mb:.0f} MB, measured {r.measured_peak_mb:.0f} MB ({err:+.0f} %)", flush=True)


def main() -> None:
    for name in ("sweep", "all-types", "large-heads"):
        predict_and_run(name, ONE / name, ONE / name)
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp) / "small", Path(tmp) / "big"
        eventlogs(small, [1, 2, 4, 8])
        eventlogs(big, [10, 20, 40, 80, 120])
        predict_and_run("EventLog 10-120 MB, calibrated on 1-8 MB", small, big, sample=4)
        predict_and_run("EventLog 10-120 MB, calibrated on the folder", big, big, sample=4)


if __name__ == "__main__":
    main()
