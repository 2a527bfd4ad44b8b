"""``python -m benchmarks ...``: the speed / memory / scaling harness (see ``benchmarks/harness``)."""

import sys

from benchmarks.harness.cli import main

sys.exit(main())
