import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from hypothesis import settings

# CI replays the same examples every run (a red main must mean a regression, not a new draw);
# local runs keep drawing fresh examples, and `--hypothesis-seed=N` reproduces one of them.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
