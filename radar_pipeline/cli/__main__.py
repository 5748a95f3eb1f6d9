"""`python -m radar_pipeline.cli ...` = the `radar` console script (tests and benches run it this way)."""
import sys

from radar_pipeline.cli import console

sys.exit(console())
