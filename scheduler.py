"""`python scheduler.py`: the long-running scheduler (see `python scheduler.py --help`)."""

import sys

from newsletter.scheduling.cli import main

if __name__ == "__main__":
    sys.exit(main())
