"""The command line: `imkd <verb>` (imkd.py) and `imkd bag <verb>` (bag.py)."""

from imkd_ros.cli.imkd import build_parser, main

__all__ = ["build_parser", "main"]
