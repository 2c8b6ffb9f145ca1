"""``python -m headless``: the headless style-transfer runner (see headless/runner.py)."""

import sys

from headless.runner import main

if __name__ == "__main__":
    sys.exit(main())
