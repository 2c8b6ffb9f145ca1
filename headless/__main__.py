"""``python -m headless``: the headless style-transfer runner (see headless/cli.py)."""

import sys

from headless.cli import main

if __name__ == "__main__":
    if sys.argv[1:2] == ["evaluate"]:  # the evaluation protocol: its own parser (headless/evaluate_cli.py)
        from headless.evaluate_cli import main as evaluate_main

        sys.exit(evaluate_main(sys.argv[2:]))
    sys.exit(main())
