"""``python -m stream_lis`` is ``stream-lis``."""

import sys

from .cli import main

sys.exit(main())
