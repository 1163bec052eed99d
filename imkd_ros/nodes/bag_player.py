"""``python -m imkd_ros.nodes.bag_player``: play a ROS 2 bag's camera, radar and ego poses into the ROS graph with
``/clock`` and record the detector node's answers (the sensor side of ``imkd bag replay-eval --live``).

The bag is read with :class:`imkd_ros.bag.source.BagSource` (any bag; topics by role, ``--topic ROLE=TOPIC``) and its
messages published in log-time order (:func:`imkd_ros.apps.replay.ordered_messages`), paced at ``--rate`` x real time,
free-running (the detector keeps up as it can): ``/clock`` at each message's log time, then the message re-serialised
from the bag (``Publisher.publish`` takes serialised bytes) on the topics the dataset player of
:mod:`imkd_ros.nodes.player` uses -- ``/camera/image``, ``/camera/camera_info`` (with several cameras
``/camera/<name>/image`` and ``/camera/<name>/camera_info``, the names of :func:`imkd_ros.apps.replay.sensor_rig`),
``/radar/front`` (with several radars ``/radar/<name>``, the name being the last part of the bag's topic),
``/ego_pose`` and ``/tf_static`` (latched: reliable, transient local), so ``detector_node`` runs with the remappings
of :func:`imkd_ros.pipeline.topics.detector_remaps` and finds its extrinsics in tf. Camera frames: those with ground
truth (``--frames keyframes``, default; the other cameras' frames that can belong to their sets, within
``camera_set_lead`` / ``camera_set_window`` of ``config/detector.yaml``) or all. Messages are read from the bag as
they are played (one pass ahead to plan), so a long bag needs no memory for its images. The detector's outputs go to
an MCAP bag (``--out-bag``) and a JSON summary (``--summary``, as the dataset player writes it).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import rclpy
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock

from imkd_ros.apps.replay import MAX_GAP_S, in_camera_set, ordered_messages, sensor_rig
from imkd_ros.bag.source import BagMessage, BagSource
from imkd_ros.bag.topics import BagTopics
from imkd_ros.nodes.player import NODE, STATIC_QOS, TOPICS, Event, Recorder, add_serve_arguments, serve
from imkd_ros.pipeline.topics import camera_topic, radar_topic
from imkd_ros.ros.messages import ns_to_stamp

__all__ = ["BagPlayer", "main"]

_KIND = {"image": "camera", "camera_info": "camera_info", "radar": "radar", "ego_pose": "ego_pose", "tf_static": "tf"}


def _msg_class(msgtype: str) -> Any:
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


class BagPlayer(Recorder):
    """Publisher of a bag's sensor messages plus recorder of the detector's outputs (module docstring).

    Args:
        src: the bag.
        frames: ``"keyframes"`` (images with ground truth) or ``"all"``.
        bag: MCAP folder for the detector's outputs (must not exist), or None.
        node: the detector node's name.

    Attributes:
        events: what :func:`imkd_ros.nodes.player.play` publishes, in order (camera events stamped with the image's
            header stamp, the others with their log time).
    """

    def __init__(self, src: BagSource, frames: str = "keyframes", bag: Path | None = None, node: str = NODE) -> None:
        super().__init__("imkd_bag_player", bag, node)
        self.src = src
        self._roles = ["image", "camera_info", "radar"] + [r for r in ("ego_pose", "tf_static") if src.has(r)]
        rig = sensor_rig(src)
        n = len(rig.camera_names)
        out_topic = {t: camera_topic("image", rig.camera_of(t), n) for t in rig.image_topics}
        out_topic.update({t: camera_topic("camera_info", rig.camera_of(t), n) for t in rig.info_topics})
        out_topic.update({t: radar_topic(rig.name_of(t), len(rig.radar_topics)) for t in rig.radar_topics})
        self._reference, self._views = rig.image_topics[0], set(rig.image_topics[1:])
        out_topic[src.topics.ego_pose] = TOPICS["ego_pose"]
        out_topic[src.topics.tf_static] = "/tf_static"
        self._gt = set(src.ground_truth())
        self._gt_sorted = sorted(self._gt)
        self._keyframes_only = frames == "keyframes"
        keys = {stamp: key for key, stamp in src.keyframes()} if src.has("sample_token") else {}
        qos = QoSProfile(depth=10)
        self.pubs["clock"] = self.create_publisher(Clock, "/clock", qos)
        self._pub_of: dict[str, Any] = {}
        self.events: list[Event] = []
        for i, m in enumerate(self._played()):
            role = src.topics.role_of(m.topic) or "image"
            if m.topic not in self._pub_of:
                topic_qos = STATIC_QOS if role == "tf_static" else qos  # latched, as a static broadcaster's
                self._pub_of[m.topic] = self.create_publisher(_msg_class(m.msgtype), out_topic[m.topic], topic_qos)
                self.pubs.setdefault(role, self._pub_of[m.topic])  # the first of each role, for wait_matched
            if role == "image":  # wait_matched waits for the node to subscribe to every camera
                self.pubs.setdefault(f"image {m.topic}", self._pub_of[m.topic])
            stamp = m.stamp_ns if role == "image" else m.log_ns  # answers are matched by the image's stamp
            kind = "view" if m.topic in self._views else _KIND[role]
            self.events.append(Event(stamp, kind, str(i), m.stamp_ns in self._gt, keys.get(m.stamp_ns, "")))
        self.events = _camera_sets(self.events)
        self._next: Iterator[tuple[int, BagMessage]] | None = None

    def _played(self) -> Iterator[BagMessage]:
        from imkd_ros.pipeline.detector_params import DetectorNodeConfig

        cfg = DetectorNodeConfig.defaults()
        lead, window = (int(round(v * 1e9)) for v in (cfg.camera_set_lead, cfg.camera_set_window))
        for m in ordered_messages(self.src, self._roles):
            if self._keyframes_only and m.topic == self._reference and m.stamp_ns not in self._gt:
                continue
            if self._keyframes_only and m.topic in self._views:
                if not in_camera_set(m.stamp_ns, self._gt_sorted, lead, window):
                    continue
            yield m

    def prepare(self, events: Sequence[Event]) -> None:
        """The bag's first ``/tf_static`` message before anything else is played (it is played again at its log
        time), so the detector knows its extrinsics before the first sensor message."""
        if self.src.has("tf_static"):
            first = next(iter(self.src.messages(["tf_static"])), None)
            if first is not None and first.topic in self._pub_of:
                self._pub_of[first.topic].publish(bytes(self.src.typestore.serialize_cdr(first.msg, first.msgtype)))

    def preload(self, events: Sequence[Event]) -> None:
        """Nothing: messages are read from the bag as they are played."""

    def publish(self, ev: Event) -> float:
        """Publish ``/clock`` at the message's log time, then the message (read from the bag now, events in order);
        returns the wall time (``perf_counter``) at which it was handed to the middleware."""
        if self._next is None:
            self._next = enumerate(self._played())
        i, m = next(self._next)
        if str(i) != ev.token:
            raise RuntimeError(f"bag_player: events played out of order (message {i}, event {ev.token})")
        raw = bytes(self.src.typestore.serialize_cdr(m.msg, m.msgtype))
        self._now = m.log_ns
        self.pubs["clock"].publish(Clock(clock=ns_to_stamp(m.log_ns)))
        t_pub = time.perf_counter()
        self._pub_of[m.topic].publish(raw)
        return t_pub


def _camera_sets(events: list[Event]) -> list[Event]:
    """``events`` (in play order) with the last camera frame of each set (a reference frame and the other cameras'
    frames up to the next one) marked ``last`` and given the set's reference stamp ``ref``, so that a frame's
    latency counts from its set's last image, as the dataset player's."""
    out = [replace(ev, last=False) if ev.kind in ("camera", "view") else ev for ev in events]
    ref, last = 0, None
    for i, ev in enumerate(out):
        if ev.kind == "camera":
            if last is not None:
                out[last] = replace(out[last], last=True)
            ref, last = ev.stamp, i
        elif ev.kind == "view":
            out[i] = replace(ev, ref=ref)
            last = i if ref else last
    if last is not None:
        out[last] = replace(out[last], last=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m imkd_ros.nodes.bag_player", description=__doc__.splitlines()[0])
    p.add_argument("--bag", required=True, help="ROS 2 bag to play")
    add_serve_arguments(p)
    p.add_argument("--out-bag", default=None, help="MCAP bag folder for the detector's outputs (must not exist)")
    p.add_argument("--frames", choices=("keyframes", "all"), default="keyframes", help="camera frames played")
    p.add_argument("--topic", action="append", metavar="ROLE=TOPIC", help="a topic of the bag (repeatable)")
    p.add_argument("--settle", type=float, default=30.0, help="seconds to wait for the last frame's answer")
    args, ros_args = p.parse_known_args(argv)
    src = BagSource(args.bag, BagTopics.from_mapping(args.topic or []))
    rclpy.init(args=["prog", *ros_args])
    player = BagPlayer(src, args.frames, Path(args.out_bag) if args.out_bag else None, args.node)
    events = player.events
    gaps = [b.stamp - a.stamp for a, b in zip(events, events[1:], strict=False)]
    data_s = sum(d for d in gaps if 0 <= d <= MAX_GAP_S * 1e9) / 1e9  # the bag time played, without scene cuts
    return serve(player, events, args, lockstep=False, answer_timeout=args.settle, settle=args.settle,
                 info={"data_s": data_s})  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
