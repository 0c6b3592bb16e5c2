"""``python -m langchain_steer.cli``: the same as the ``langchain-steer`` console script."""

import sys

from langchain_steer.cli import main

sys.exit(main())
