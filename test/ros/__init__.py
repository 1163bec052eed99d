"""Tests of imkd_ros.ros (a package so that module names here cannot clash with other test folders)."""
