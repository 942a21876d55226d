"""`python -m atoll.serving`: see `atoll.serving.server`."""

import sys

from atoll.serving.server import main

sys.exit(main())
