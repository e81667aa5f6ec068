"""`python -m tools.offline`: the command (tools.offline.cli)."""

import sys

from tools.offline.cli import main

if __name__ == "__main__":
    sys.exit(main())
