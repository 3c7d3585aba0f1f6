"""Entry point: ``python -m tests.mutation [options]`` (see ``--help``)."""

from __future__ import annotations

from tests.mutation.cli import main

raise SystemExit(main())
