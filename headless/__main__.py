"""``python -m headless``: the headless style-transfer runner (see headless/cli.py)."""

import sys

from headless.cli import main

if __name__ == "__main__":
    sys.exit(main())
