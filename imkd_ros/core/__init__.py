"""The core layer: errors, crash-safe writes, classes, transforms and geometry, the data types, sweep selection, the
shipped models' paths. Imports nothing else of imkd_ros."""
