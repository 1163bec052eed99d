"""Bird's-eye-view pictures of a frame: LiDAR and radar points, ground truth and detections (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imkd_ros.core.types import Boxes, Frame

__all__ = ["draw_bev"]


def _draw_boxes(ax, boxes: Boxes, color: str, label: str) -> None:  # noqa: ANN001 - matplotlib axes
    corners = boxes.corners()[:, [0, 1, 2, 3, 0], :2]  # bottom face, closed
    for i in range(len(boxes)):
        ax.plot(corners[i, :, 1], corners[i, :, 0], color=color, lw=1.0, label=label if i == 0 else None)
        front = corners[i, [0, 3], :].mean(axis=0)
        ax.plot([boxes.center[i, 1], front[1]], [boxes.center[i, 0], front[0]], color=color, lw=0.8)
        v = boxes.velocity[i]
        if np.all(np.isfinite(v)) and np.hypot(*v) > 0.5:
            ax.arrow(
                boxes.center[i, 1],
                boxes.center[i, 0],
                v[1] * 0.5,
                v[0] * 0.5,
                color=color,
                width=0.05,
                head_width=0.4,
                length_includes_head=True,
            )


def draw_bev(
    path: str | Path,
    frame: Frame,
    detections: Boxes | None = None,
    *,
    x_range: tuple[float, float] = (-10.0, 60.0),
    y_range: tuple[float, float] = (-30.0, 30.0),
    title: str | None = None,
) -> Path:
    """Write a BEV PNG of ``frame`` (ego frame; x forward drawn up, y left drawn left).

    Args:
        path: PNG to write.
        frame: its LiDAR ``(M, 6)`` (grey, if any), radar ``(N, 7)`` (coloured by compensated speed) and GT boxes
            (green) are drawn.
        detections: boxes in the ego frame (red), optional.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend, no figure registry

    fig = Figure(figsize=(7, 8), dpi=110)
    ax = fig.subplots()
    if frame.lidar is not None and len(frame.lidar):
        ax.scatter(frame.lidar[:, 1], frame.lidar[:, 0], s=0.2, c="0.6", label="LiDAR")
    if len(frame.radar):
        speed = np.hypot(frame.radar[:, 4], frame.radar[:, 5])
        sc = ax.scatter(
            frame.radar[:, 1], frame.radar[:, 0], s=6, c=speed, cmap="plasma", vmin=0, vmax=10, label="radar"
        )
        fig.colorbar(sc, ax=ax, fraction=0.04, label="radar |v_comp| (m/s)")
    if frame.gt is not None and len(frame.gt):
        _draw_boxes(ax, frame.gt, "tab:green", "ground truth")
    if detections is not None and len(detections):
        _draw_boxes(ax, detections, "tab:red", "detections")
    ax.plot([0], [0], marker="^", color="k", ms=8)
    ax.set_xlim(y_range[1], y_range[0])
    ax.set_ylim(*x_range)
    ax.set_aspect("equal")
    ax.set_xlabel("y (m, left)")
    ax.set_ylabel("x (m, forward)")
    ax.set_title(title or f"{frame.scene} {frame.token[:8]} ({frame.weather})")
    ax.legend(loc="lower right", fontsize=7)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    return path
