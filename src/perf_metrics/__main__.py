"""`python -m perf_metrics ...`: the same command as `perf-metrics`."""

import sys

from perf_metrics.cli import main

sys.exit(main())
