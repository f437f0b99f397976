"""``python -m adaptive_mbrl`` is the ``adaptive-mbrl`` command."""
import sys

from adaptive_mbrl.cli import main

sys.exit(main())
