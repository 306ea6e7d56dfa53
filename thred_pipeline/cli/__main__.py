"""``python -m thred_pipeline.cli``: the same as the ``thred-pipeline`` command."""

import sys

from thred_pipeline.cli import main

sys.exit(main())
