"""The detector node's logic without rclpy or ROS message types, shared by the nodes and the offline bag replay:
camera-radar sync (:mod:`.sync`), frame assembly (:mod:`.assemble`), the nodes' typed configs (:mod:`.detector_params`,
:mod:`.teacher_params`), the tf tree (:mod:`.tf`), where extrinsics come from (:mod:`.extrinsics`), ``/diagnostics``
contents (:mod:`.diagnostics`), the parameter schema (:mod:`.params`), the DetectedObjects layout (:mod:`.objects`),
message field arrays -> numpy (:mod:`.arrays`), warning throttling (:mod:`.throttle`) and the environment of ROS child
processes (:mod:`.env`).

Imports no rclpy and no message package (the import contract, ``test/test_import_contract.py``, checks it). Import
the submodules directly; this ``__init__`` imports nothing.
"""

__all__: list[str] = []
