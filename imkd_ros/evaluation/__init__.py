"""Evaluation: the nuscenes-devkit scoring, the fast metrics and scene bootstrap, coverage regions, plots, `imkd eval`
and `imkd compare`."""
