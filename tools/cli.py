"""`python -m tools.cli`: an alias of the `redeliver` command, kept for scripts written before
the operator commands moved to their own package (redeliver_cli/, installed by `make`)."""

import sys

from redeliver_cli.main import main

if __name__ == "__main__":
    sys.exit(main())
