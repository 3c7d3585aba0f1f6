"""The frozen desktop app's entry point (`anonchat`)."""

import sys

from app.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
