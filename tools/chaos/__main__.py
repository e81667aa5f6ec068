"""`python -m tools.chaos`: the command (tools.chaos.cli)."""

import sys

from tools.chaos.cli import main

if __name__ == "__main__":
    sys.exit(main())
