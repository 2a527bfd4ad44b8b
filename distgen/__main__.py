"""``python -m distgen`` (also how ``torchrun -m distgen train ...`` starts)."""

import sys

from distgen.cli import main

sys.exit(main())
