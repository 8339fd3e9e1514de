"""The whole benchmark suite, one command: ingest throughput, then reads at 1M and 10M calls.

    python bench/all.py

The call logs are built on first use (about 15 minutes for 10M calls on a 2-core machine) and
reused afterwards. Results: bench/results/ingest.{json,md} and bench/results/read.{json,md}.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    for script in ("ingest.py", "read.py"):
        subprocess.run([sys.executable, str(HERE / script)], check=True)
