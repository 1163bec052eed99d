"""The synthetic world: procedural driving scenes (:mod:`.world`), simulated camera, radar and LiDAR, and the writer
that stores them as a nuScenes-format dataset (:func:`write_dataset`, the ``imkd synth`` verb)."""

from __future__ import annotations

from imkd_ros.data.synth.writer import SynthSummary, write_dataset

__all__ = ["SynthSummary", "write_dataset"]
