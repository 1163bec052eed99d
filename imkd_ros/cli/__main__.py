"""``python -m imkd_ros.cli`` = ``imkd``."""

import sys

from imkd_ros.cli.imkd import main

sys.exit(main())
