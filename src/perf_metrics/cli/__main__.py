"""`python -m perf_metrics.cli ...`, as the tests run the command."""

import sys

from perf_metrics.cli import main

sys.exit(main())
