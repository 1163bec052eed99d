"""Model configuration: one frozen dataclass per component, gathered in :class:`ModelConfig`.

Everything that defines a model's shape (BEV grid, image size, depth bins, channels, classes) lives here and
travels inside a checkpoint as the plain dict of :meth:`ModelConfig.to_dict`; :meth:`ModelConfig.from_dict` reads
it back (lists from YAML become tuples; an unknown key is an error, a missing key takes its default).

Variants are chosen by ``modalities``: ``("camera", "radar")`` is the IMKD student, ``("camera",)`` and
``("radar",)`` are the ablation students, ``("lidar",)`` is the teacher. :meth:`ModelConfig.default` is sized for
the latency target (student <= 50 ms per frame on 2 CPU cores at 704x256); :meth:`ModelConfig.tiny` trains in
about a minute on CPU and is meant for tests.

Grid convention (used by every module): the BEV grid covers ``x_range`` x ``y_range`` of the ego frame (x forward,
y left, z up). A BEV tensor is ``(B, C, NY, NX)``: row ``i`` holds ``y = y_min + (i + 0.5) * cell``, column ``j``
holds ``x = x_min + (j + 0.5) * cell``. Points and the camera frustum are pooled at ``cell``; the BEV network
enters at ``stride`` so features, head outputs and targets live on the coarser ``(out_ny, out_nx)`` grid with cell
``out_cell = cell * stride``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from imkd_ros.core.classes import CLASSES
from imkd_ros.model.errors import ModelConfigError

__all__ = [
    "GridConfig",
    "ImageConfig",
    "CameraConfig",
    "RadarConfig",
    "LidarConfig",
    "BEVConfig",
    "HeadConfig",
    "DecodeConfig",
    "ModelConfig",
    "MODALITIES",
    "CAMERA_FEATURE_STRIDE",
]

#: The sensor modalities a model can take; the teacher is the model whose modalities are ``("lidar",)``.
MODALITIES: tuple[str, ...] = ("camera", "radar", "lidar")

#: Stride (input pixels per feature cell) of the image backbone + neck output that the depth net lifts.
CAMERA_FEATURE_STRIDE: int = 16


def _check(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ModelConfigError(f"{where}: {msg}")


@dataclass(frozen=True)
class GridConfig:
    """BEV grid (ego frame, metres). See the module docstring for the tensor layout.

    Attributes:
        x_range: ``(x_min, x_max)``, forward.
        y_range: ``(y_min, y_max)``, left.
        z_range: ``(z_min, z_max)``: points and frustum samples outside are dropped.
        cell: pillar / splat cell size (m).
        stride: BEV network entry stride; the head works at ``cell * stride``.
    """

    x_range: tuple[float, float] = (0.0, 51.2)
    y_range: tuple[float, float] = (-25.6, 25.6)
    z_range: tuple[float, float] = (-2.0, 4.0)
    cell: float = 0.4
    stride: int = 2

    def __post_init__(self) -> None:
        for name in ("x_range", "y_range", "z_range"):
            lo, hi = getattr(self, name)
            _check(hi > lo, f"GridConfig.{name}", f"needs min < max, got {(lo, hi)}")
        _check(self.cell > 0, "GridConfig.cell", f"must be > 0, got {self.cell}")
        _check(self.stride >= 1, "GridConfig.stride", f"must be >= 1, got {self.stride}")
        for name in ("x_range", "y_range"):
            lo, hi = getattr(self, name)
            n = (hi - lo) / self.cell
            _check(abs(n - round(n)) < 1e-6, f"GridConfig.{name}", f"span {hi - lo} is not a multiple of {self.cell}")
            _check(
                round(n) % self.stride == 0,
                f"GridConfig.{name}",
                f"{round(n)} cells are not divisible by stride {self.stride}",
            )

    @property
    def nx(self) -> int:
        """Cells along x at ``cell``."""
        return round((self.x_range[1] - self.x_range[0]) / self.cell)

    @property
    def ny(self) -> int:
        """Cells along y at ``cell``."""
        return round((self.y_range[1] - self.y_range[0]) / self.cell)

    @property
    def out_nx(self) -> int:
        """Cells along x of the head grid."""
        return self.nx // self.stride

    @property
    def out_ny(self) -> int:
        """Cells along y of the head grid."""
        return self.ny // self.stride

    @property
    def out_cell(self) -> float:
        """Cell size (m) of the head grid."""
        return self.cell * self.stride


@dataclass(frozen=True)
class ImageConfig:
    """Camera input. Images are resized (aspect kept) to cover ``input_size``, then cropped: centred horizontally,
    bottom rows kept (the sky is dropped), as BEVDepth does for nuScenes (1600x900 -> 704x396 -> 704x256).

    Attributes:
        input_size: ``(width, height)`` in pixels; both multiples of :data:`CAMERA_FEATURE_STRIDE`.
        mean, std: per-channel normalisation of 0-1 RGB.
    """

    input_size: tuple[int, int] = (704, 256)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        w, h = self.input_size
        s = CAMERA_FEATURE_STRIDE
        _check(
            w % s == 0 and h % s == 0 and w > 0 and h > 0, "ImageConfig.input_size", f"{(w, h)} not multiples of {s}"
        )
        _check(len(self.mean) == 3 and len(self.std) == 3, "ImageConfig.mean/std", "need 3 values each")
        _check(all(v > 0 for v in self.std), "ImageConfig.std", "must be > 0")

    @property
    def feature_size(self) -> tuple[int, int]:
        """``(fW, fH)`` of the lifted feature map."""
        return self.input_size[0] // CAMERA_FEATURE_STRIDE, self.input_size[1] // CAMERA_FEATURE_STRIDE


@dataclass(frozen=True)
class CameraConfig:
    """Image backbone (ResNet-style, stages at strides 4, 8, 16, 32), neck (stride 16) and depth net.

    Attributes:
        stem_channels: channels of the two stride-2 stem convolutions.
        stage_channels: output channels of the 4 stages.
        stage_blocks: residual blocks per stage (>= 1).
        neck_channels: channels of the stride-16 feature map.
        depth_channels: hidden channels of the depth net.
        depth_range: ``(d_min, d_max)`` metres along the optical axis, split into ``depth_bins`` equal bins;
            frustum samples sit at bin centres.
        depth_bins: D, number of categorical depth bins.
        context_channels: channels of the lifted features (camera BEV before the BEV entry convolution).
        trunk: ``"basic"`` (the stem and basic-block stages above, trained from scratch) or ``"resnet50"``
            (:class:`~imkd_ros.model.resnet.ResNet50Trunk`, torchvision's layout: ImageNet weights load from a file;
            ``stage_channels`` / ``stage_blocks`` must then be ResNet-50's, ``stem_channels`` is unused).
    """

    stem_channels: int = 24
    stage_channels: tuple[int, int, int, int] = (32, 64, 128, 192)
    stage_blocks: tuple[int, int, int, int] = (1, 1, 1, 1)
    neck_channels: int = 96
    depth_channels: int = 96
    depth_range: tuple[float, float] = (2.0, 50.0)
    depth_bins: int = 48
    context_channels: int = 32
    trunk: str = "basic"

    def __post_init__(self) -> None:
        _check(self.trunk in ("basic", "resnet50"), "CameraConfig.trunk", f"basic or resnet50, got {self.trunk!r}")
        if self.trunk == "resnet50":
            from imkd_ros.model.resnet import RESNET50_BLOCKS, RESNET50_CHANNELS

            ok = tuple(self.stage_channels) == RESNET50_CHANNELS and tuple(self.stage_blocks) == RESNET50_BLOCKS
            _check(ok, "CameraConfig.stage_channels/stage_blocks", f"must be {RESNET50_CHANNELS} / {RESNET50_BLOCKS}")
        _check(len(self.stage_channels) == 4, "CameraConfig.stage_channels", "needs 4 values")
        _check(len(self.stage_blocks) == 4, "CameraConfig.stage_blocks", "needs 4 values")
        _check(all(b >= 1 for b in self.stage_blocks), "CameraConfig.stage_blocks", "each must be >= 1")
        lo, hi = self.depth_range
        _check(0 < lo < hi, "CameraConfig.depth_range", f"needs 0 < d_min < d_max, got {(lo, hi)}")
        _check(self.depth_bins >= 2, "CameraConfig.depth_bins", f"must be >= 2, got {self.depth_bins}")

    @property
    def depth_step(self) -> float:
        """Width of one depth bin (m)."""
        return (self.depth_range[1] - self.depth_range[0]) / self.depth_bins


@dataclass(frozen=True)
class RadarConfig:
    """Radar pillar encoder. Input columns are :data:`imkd_ros.core.types.RADAR_FEATURES`.

    Attributes:
        sweeps: radar sweeps accumulated per frame by the data pipeline (the model does not depend on it).
        point_channels: channels of the per-point MLP and of the radar pillar BEV.
        density_scale: per-pillar point count enters as ``log1p(count) / density_scale``.
        rcs_scale: RCS (dBsm) is divided by this before the MLP.
        velocity_scale: compensated velocities (m/s) are divided by this.
        time_scale: time lag (s) is divided by this.
        fov_deg: the radar's total horizontal field of view (deg), centred on its x axis.
        max_range: the radar's range (m).

    ``fov_deg`` and ``max_range`` are properties of the sensor, not of the network: they only define the coverage
    region the model is scored in beside its grid (:mod:`imkd_ros.evaluation.coverage`). Defaults: nuScenes' Continental
    ARS 408-21 in its near-range scan. Its datasheet (ARS 408-21 technical data, conti-engineering.com,
    ``ARS-408-21_EN_HS-1.pdf``) gives an azimuth field of view of -60..+60 deg near range (-9..+9 deg far range)
    and a distance range of 0.20-70 m (70 m / 100 m) at 0..+-45 deg, 0.20-20 m at +-60 deg near range, 0.20-250 m
    far range. One sector of +-60 deg out to 70 m is therefore generous between 45 and 60 deg beyond 20 m; the far
    beam reaches beyond the BEV grids used here anyway.
    """

    sweeps: int = 6
    point_channels: int = 32
    density_scale: float = 2.0
    rcs_scale: float = 20.0
    velocity_scale: float = 10.0
    time_scale: float = 0.5
    fov_deg: float = 120.0
    max_range: float = 70.0

    def __post_init__(self) -> None:
        _check(self.sweeps >= 1, "RadarConfig.sweeps", f"must be >= 1, got {self.sweeps}")
        for name in ("density_scale", "rcs_scale", "velocity_scale", "time_scale", "max_range"):
            _check(getattr(self, name) > 0, f"RadarConfig.{name}", "must be > 0")
        _check(0 < self.fov_deg <= 360, "RadarConfig.fov_deg", f"must be in (0, 360], got {self.fov_deg}")


@dataclass(frozen=True)
class LidarConfig:
    """LiDAR pillar encoder of the teacher. Input columns are :data:`imkd_ros.core.types.LIDAR_FEATURES`.

    Attributes:
        sweeps: LiDAR sweeps accumulated per frame by the data pipeline (training, evaluation, teacher targets all
            read this many; the time lag column lets the teacher see motion). 10 sweeps = 0.45 s at 20 Hz, the
            nuScenes convention: a pedestrian at 1.4 m/s moves 0.6 m, more than a pillar.
        point_channels: channels of the per-point MLP and of the LiDAR pillar BEV.
        max_intensity: reflectance intensity is divided by this (nuScenes: 0-255).
        density_scale: per-pillar point count enters as ``log1p(count) / density_scale``.
        time_scale: time lag (s) is divided by this.
        max_points_per_pillar: points per pillar through the point MLP (0: all); the density and intensity maps
            count every point.
    """

    sweeps: int = 10
    point_channels: int = 64
    max_intensity: float = 255.0
    density_scale: float = 4.0
    time_scale: float = 0.5
    max_points_per_pillar: int = 32

    def __post_init__(self) -> None:
        _check(self.sweeps >= 1, "LidarConfig.sweeps", f"must be >= 1, got {self.sweeps}")
        _check(self.max_points_per_pillar >= 0, "LidarConfig.max_points_per_pillar", "must be >= 0")
        for name in ("max_intensity", "density_scale", "time_scale"):
            _check(getattr(self, name) > 0, f"LidarConfig.{name}", "must be > 0")


@dataclass(frozen=True)
class BEVConfig:
    """BEV network on the head grid: ``blocks`` residual blocks at C, ``down_blocks`` at C*2 on a stride-2 branch
    that is upsampled and merged back.

    Attributes:
        channels: C, channels of every BEV feature map the model exposes (camera, radar, fused, teacher).
        blocks: residual blocks at full head resolution (>= 0).
        down_blocks: residual blocks on the stride-2 branch (0 disables the branch).
    """

    channels: int = 48
    blocks: int = 1
    down_blocks: int = 2

    def __post_init__(self) -> None:
        _check(self.channels >= 1, "BEVConfig.channels", "must be >= 1")
        _check(self.blocks >= 0 and self.down_blocks >= 0, "BEVConfig.blocks/down_blocks", "must be >= 0")


@dataclass(frozen=True)
class HeadConfig:
    """CenterPoint-style head, its targets and loss weights.

    Regression channels, in order: offset (2), z (1), log size w,l,h (3), sin/cos yaw (2), velocity (2).

    Attributes:
        hidden: channels of the head's convolutions.
        max_objects: boxes per sample kept as regression targets (more are dropped, nearest first kept).
        min_overlap: CenterPoint ``gaussian_radius`` overlap.
        min_radius: smallest gaussian radius (cells).
        heatmap_weight: weight of the focal loss.
        regression_weight: weight of the summed regression losses.
        code_weights: per-channel weights of the 10 regression channels. Velocity weighs 1.0, not CenterPoint's
            0.2: with a few thousand training frames (CenterPoint: 28k x 20 epochs) 0.2 left velocity unlearned
            (mAVE > 1 m/s for every model).
        depth_weight: weight of the depth-supervision loss (camera students only).
    """

    hidden: int = 48
    max_objects: int = 128
    min_overlap: float = 0.1
    min_radius: int = 2
    heatmap_weight: float = 1.0
    regression_weight: float = 0.25
    code_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    depth_weight: float = 3.0

    def __post_init__(self) -> None:
        _check(
            len(self.code_weights) == 10, "HeadConfig.code_weights", f"needs 10 values, got {len(self.code_weights)}"
        )
        _check(self.max_objects >= 1, "HeadConfig.max_objects", "must be >= 1")
        _check(0 < self.min_overlap < 1, "HeadConfig.min_overlap", "must be in (0, 1)")


#: Circle-NMS distance (m, centre to centre on the ground plane) per class of :data:`CLASSES` (CenterPoint's
#: nuScenes values, which it compares with squared distances, turned into metres).
_DEFAULT_NMS_DISTANCE: tuple[float, ...] = (2.0, 3.5, 3.2, 3.2, 3.5, 1.0, 0.9, 0.9, 0.42, 0.42)


@dataclass(frozen=True)
class DecodeConfig:
    """Decoding of head outputs into boxes.

    Attributes:
        top_k: peaks taken per sample after 3x3 max-pool NMS.
        score_threshold: boxes below are dropped.
        nms_distance: per class of :attr:`ModelConfig.classes`, circle-NMS radius (m); 0 disables NMS for it.
        max_detections: boxes kept per sample after NMS (highest scores).
    """

    top_k: int = 100
    score_threshold: float = 0.1
    nms_distance: tuple[float, ...] = _DEFAULT_NMS_DISTANCE
    max_detections: int = 100

    def __post_init__(self) -> None:
        _check(self.top_k >= 1 and self.max_detections >= 1, "DecodeConfig.top_k/max_detections", "must be >= 1")
        _check(all(d >= 0 for d in self.nms_distance), "DecodeConfig.nms_distance", "must be >= 0")


@dataclass(frozen=True)
class ModelConfig:
    """A whole detector: which modalities, on which grid, with which parts.

    Attributes:
        name: experiment / model name (free text).
        modalities: subset of :data:`MODALITIES`; ``("lidar",)`` alone is the teacher.
        classes: detected classes, a subset of :data:`imkd_ros.core.classes.CLASSES` in that order; head channel ``k``
            is ``classes[k]``.
    """

    name: str = "imkd_student"
    modalities: tuple[str, ...] = ("camera", "radar")
    classes: tuple[str, ...] = CLASSES
    grid: GridConfig = field(default_factory=GridConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    radar: RadarConfig = field(default_factory=RadarConfig)
    lidar: LidarConfig = field(default_factory=LidarConfig)
    bev: BEVConfig = field(default_factory=BEVConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def __post_init__(self) -> None:
        mods = tuple(self.modalities)
        _check(len(mods) > 0, "ModelConfig.modalities", "is empty")
        _check(len(set(mods)) == len(mods), "ModelConfig.modalities", f"has duplicates: {mods}")
        for m in mods:
            _check(m in MODALITIES, "ModelConfig.modalities", f"unknown modality {m!r}; choose from {MODALITIES}")
        _check(
            "lidar" not in mods or mods == ("lidar",),
            "ModelConfig.modalities",
            f"'lidar' is the teacher's only modality, got {mods}",
        )
        _check(len(self.classes) > 0, "ModelConfig.classes", "is empty")
        for c in self.classes:
            _check(c in CLASSES, "ModelConfig.classes", f"unknown class {c!r}")
        order = [CLASSES.index(c) for c in self.classes]
        _check(order == sorted(set(order)), "ModelConfig.classes", "must be unique and in CLASSES order")
        _check(
            len(self.decode.nms_distance) in (len(self.classes), len(CLASSES)),
            "ModelConfig.decode.nms_distance",
            f"needs one value per class ({len(self.classes)}), got {len(self.decode.nms_distance)}",
        )

    # ----------------------------------------------------------------------------------------------- variants
    @property
    def is_teacher(self) -> bool:
        """True for the LiDAR teacher."""
        return self.modalities == ("lidar",)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_nms_distance(self) -> tuple[float, ...]:
        """Circle-NMS radius (m) per class of :attr:`classes`."""
        d = self.decode.nms_distance
        if len(d) == len(self.classes):
            return tuple(d)
        return tuple(d[CLASSES.index(c)] for c in self.classes)

    @classmethod
    def default(cls, modalities: tuple[str, ...] = ("camera", "radar")) -> ModelConfig:
        """The default model for ``modalities`` (student, ablation student or, for ``("lidar",)``, teacher)."""
        return cls(name=_default_name(modalities), modalities=tuple(modalities))

    @classmethod
    def tiny(cls, modalities: tuple[str, ...] = ("camera", "radar")) -> ModelConfig:
        """A very small model (32x32 pooling grid, 128x64 image, 12 depth bins, 8-16 channels) for tests."""
        return cls(
            name=_default_name(modalities) + "_tiny",
            modalities=tuple(modalities),
            grid=GridConfig(cell=1.6, stride=2),
            image=ImageConfig(input_size=(128, 64)),
            camera=CameraConfig(
                stem_channels=8,
                stage_channels=(8, 16, 16, 32),
                stage_blocks=(1, 1, 1, 1),
                neck_channels=16,
                depth_channels=16,
                depth_bins=12,
                context_channels=8,
            ),
            radar=RadarConfig(point_channels=8),
            lidar=LidarConfig(point_channels=16),
            bev=BEVConfig(channels=16, blocks=1, down_blocks=1),
            head=HeadConfig(hidden=16, max_objects=32),
            decode=DecodeConfig(top_k=50, max_detections=50),
        )

    @classmethod
    def paper(cls, modalities: tuple[str, ...] = ("camera", "radar")) -> ModelConfig:
        """The setting of IMKD / CRN / BEVDepth on nuScenes: 704x256 images, ResNet-50 trunk (ImageNet weights from a
        torchvision-format file: ``imkd train --imagenet-weights``), 256-channel neck, depth 1-60 m in 59 bins, 80
        context channels, a +-51.2 m BEV at 0.8 m (128 x 128). For a GPU; on 2 CPU cores a step is minutes."""
        from imkd_ros.model.resnet import RESNET50_BLOCKS, RESNET50_CHANNELS

        return cls(
            name=_default_name(modalities) + "_paper",
            modalities=tuple(modalities),
            grid=GridConfig(x_range=(-51.2, 51.2), y_range=(-51.2, 51.2)),
            image=ImageConfig(input_size=(704, 256)),
            camera=CameraConfig(
                stage_channels=RESNET50_CHANNELS,
                stage_blocks=RESNET50_BLOCKS,
                neck_channels=256,
                depth_channels=256,
                depth_range=(1.0, 60.0),
                depth_bins=59,
                context_channels=80,
                trunk="resnet50",
            ),
        )

    # ------------------------------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (str, int, float, list) for YAML or a checkpoint; inverse of :meth:`from_dict`."""
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Config from :meth:`to_dict`'s dict. Unknown keys raise :class:`ModelConfigError` naming the key;
        missing keys take their defaults."""
        return _from_plain(cls, data, "ModelConfig")


def _default_name(modalities: tuple[str, ...]) -> str:
    mods = tuple(modalities)
    if mods == ("lidar",):
        return "imkd_teacher"
    if set(mods) == {"camera", "radar"}:
        return "imkd_student"
    return "imkd_student_" + "_".join(mods) + "_only"


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [_to_plain(v) for v in obj]
    return obj


def _tuple_like(ref: tuple, value: list | tuple, where: str) -> tuple:
    """``value`` as a tuple, numbers cast to float where the default holds floats (YAML writes 0.0 as 0)."""
    if ref and all(isinstance(v, float) for v in ref):
        bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int | float)]
        if bad:
            raise ModelConfigError(f"{where}: expected numbers, got {bad[0]!r}")
        return tuple(float(v) for v in value)
    if ref and all(isinstance(v, int) for v in ref):
        bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int)]
        if bad:
            raise ModelConfigError(f"{where}: expected ints, got {bad[0]!r}")
    return tuple(value)


def _from_plain(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ModelConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ModelConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    default = cls()
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        ref = getattr(default, name)
        here = f"{where}.{name}"
        if dataclasses.is_dataclass(ref):
            kwargs[name] = _from_plain(type(ref), value, here)
        elif isinstance(ref, tuple):
            if not isinstance(value, list | tuple):
                raise ModelConfigError(f"{here}: expected a list, got {type(value).__name__}")
            kwargs[name] = _tuple_like(ref, value, here)
        elif isinstance(ref, bool):
            if not isinstance(value, bool):
                raise ModelConfigError(f"{here}: expected a bool, got {value!r}")
            kwargs[name] = value
        elif isinstance(ref, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ModelConfigError(f"{here}: expected an int, got {value!r}")
            kwargs[name] = value
        elif isinstance(ref, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ModelConfigError(f"{here}: expected a number, got {value!r}")
            kwargs[name] = float(value)
        elif isinstance(ref, str):
            if not isinstance(value, str):
                raise ModelConfigError(f"{here}: expected a string, got {value!r}")
            kwargs[name] = value
        else:  # pragma: no cover - every field has one of the types above
            kwargs[name] = value
    return cls(**kwargs)
