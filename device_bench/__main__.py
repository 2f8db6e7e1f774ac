"""`python -m device_bench ...` runs the device-bench command line (handy on a board without pip
installing anything but ai-edge-litert and numpy)."""

import sys

from device_bench.cli import main

sys.exit(main())
