"""`python -m stylegram` runs the command line."""

import sys

from stylegram.cli import main

sys.exit(main())
