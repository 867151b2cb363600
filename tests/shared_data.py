"""Where the project's shared development data lives: ``../shared`` beside the checkout (as on
the developers' machines and in CI), or ``$OPPNDA_SHARED``. Tests that need it skip when absent."""
from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(os.environ.get("OPPNDA_SHARED") or Path(__file__).resolve().parents[2] / "shared")
DATA = SHARED / "data"
REFERENCE = DATA / "oppnda-reference"
ONE_REPORTS = DATA / "one-reports"
