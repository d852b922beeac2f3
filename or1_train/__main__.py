"""`python -m or1_train` is `or1-train`."""

import sys

from or1_train.cli import main

sys.exit(main())
