"""`python -m tools.offline`: the command (tools.offline.checks.main)."""

import sys

from tools.offline.checks import main

if __name__ == "__main__":
    sys.exit(main())
