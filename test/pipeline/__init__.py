"""Tests of imkd_ros.pipeline (a package so that module names here cannot clash with other test folders)."""
