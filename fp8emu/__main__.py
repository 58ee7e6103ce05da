"""``python -m fp8emu``: the same command line as the ``fp8emu`` console script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
