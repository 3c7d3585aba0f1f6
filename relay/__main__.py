"""``python -m relay``: the same entry point as ``anonchat-relay``."""

from __future__ import annotations

import sys

from relay.server import main

sys.exit(main())
