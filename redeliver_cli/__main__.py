"""`python -m redeliver_cli`, the same as the `redeliver` console script."""

import sys

from redeliver_cli.main import main

sys.exit(main())
