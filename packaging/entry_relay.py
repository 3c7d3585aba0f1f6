"""The frozen relay's entry point (`anonchat-relay`)."""

import sys

from relay.server import main

if __name__ == "__main__":
    sys.exit(main())
