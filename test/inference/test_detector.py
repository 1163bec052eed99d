"""imkd_ros.inference.detector: the reused image buffer gives exactly what collate_frames gives (images, then boxes),
from
call to call, batch size to batch size and thread to thread; inference_threads."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch

from imkd_ros.core.transforms import Pose, quat_to_matrix
from imkd_ros.core.types import Boxes, Calibration, Frame
from imkd_ros.data.dataset import collate_frames
from imkd_ros.inference.detector import Detector, inference_threads, model_inputs
from imkd_ros.model import ModelConfig, Student
from imkd_ros.model.doppler import refine_velocity

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _frame(seed: int, size: tuple[int, int] = (320, 180)) -> Frame:
    """A random frame: image ``size`` (W, H) uint8 (read-only, as the reader's), 40 radar points ahead."""
    rng = np.random.default_rng(seed)
    w, h = size
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    image.setflags(write=False)
    k = np.array([[0.6 * w, 0.0, w / 2], [0.0, 0.6 * w, h / 2], [0.0, 0.0, 1.0]])
    cam = Calibration(
        "CAM_FRONT", Pose(quat_to_matrix(np.array([0.5, -0.5, 0.5, -0.5])), np.array([1.7, 0, 1.5])), k, size
    )
    radar = np.zeros((40, 7), np.float32)
    radar[:, 0] = rng.uniform(5, 40, 40)
    radar[:, 1] = rng.uniform(-10, 10, 40)
    radar[:, 3] = rng.normal(5, 3, 40)
    return Frame(f"f{seed}", seed, "", (image,), (cam,), radar, None, Pose.identity())


@pytest.fixture(scope="module")
def detector() -> Detector:
    torch.manual_seed(0)
    return Detector(Student(config=ModelConfig.tiny(("camera", "radar"))), score_threshold=0.0)


def _reference(det: Detector, frames: list[Frame]) -> list[Boxes]:
    """The boxes of the plain path: fit_frame, collate_frames, the model, the threshold, the Doppler refinement."""
    from imkd_ros.model.preprocess import fit_frame

    fitted = [fit_frame(f, det.config.image) for f in frames]
    with torch.inference_mode():
        out = det.model(model_inputs(det.model, collate_frames(fitted)))
    raw = [d.to_boxes() for d in out]
    if det.doppler is None:
        return raw
    return [refine_velocity(b, f.radar, det.doppler) for b, f in zip(raw, frames, strict=True)]


def _same(a: Boxes, b: Boxes) -> bool:
    fields = ("center", "size", "yaw", "velocity", "label", "score")
    return len(a) == len(b) and all(np.array_equal(getattr(a, f), getattr(b, f)) for f in fields)


def test_doppler_refinement_is_applied_and_can_be_turned_off(detector: Detector) -> None:
    plain = Detector(detector.model, score_threshold=0.0, doppler=None)
    frames = [_frame(s) for s in range(4)]
    refined, raw = detector.detect_batch(frames), plain.detect_batch(frames)
    assert all(_same(r, b) for r, b in zip(_reference(plain, frames), raw, strict=True))
    assert any(not np.array_equal(r.velocity, b.velocity) for r, b in zip(refined, raw, strict=True))
    for r, b in zip(refined, raw, strict=True):  # only velocities change
        assert np.array_equal(r.center, b.center) and np.array_equal(r.score, b.score)


def test_collate_images_equal_collate_frames(detector: Detector) -> None:
    from imkd_ros.model.preprocess import fit_frame

    frames = [_frame(0), _frame(1)]
    with torch.inference_mode():
        ours = detector._collate(frames)
        ref = collate_frames([fit_frame(f, detector.config.image) for f in frames])
    w, h = detector.config.image.input_size
    assert frames[0].image.shape[:2] != (h, w) and ours.images.shape == (2, 1, 3, h, w)
    assert torch.equal(ours.images, ref.images)
    for name in ("intrinsics", "cam_to_ego", "radar", "radar_mask"):
        assert torch.equal(getattr(ours, name), getattr(ref, name)), name


def test_boxes_identical_call_after_call_and_across_batch_sizes(detector: Detector) -> None:
    frames = [_frame(s) for s in range(4)]
    for f in frames:  # the buffer is overwritten each call: no stale pixels
        assert _same(detector.detect(f), _reference(detector, [f])[0])
    for got, ref in zip(detector.detect_batch(frames[:2]), _reference(detector, frames[:2]), strict=True):
        assert _same(got, ref)
    assert _same(detector.detect(frames[3]), _reference(detector, [frames[3]])[0])  # back to batch 1
    small = _frame(7, (160, 90))  # another image size
    assert _same(detector.detect(small), _reference(detector, [small])[0])


def test_buffer_is_per_thread_and_reused(detector: Detector) -> None:
    f0, f1 = _frame(0), _frame(1)
    with torch.inference_mode():
        ptr = detector._collate([f0]).images.data_ptr()
        assert detector._collate([f1]).images.data_ptr() == ptr
    other: list[int] = []

    def run() -> None:
        with torch.inference_mode():
            other.append(detector._collate([f0]).images.data_ptr())

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert other and other[0] != ptr


def test_frames_collate_frames_rejects_still_rejected(detector: Detector) -> None:
    """Images of different sizes are each fitted to the model input, so they batch; a frame without an image
    among frames with one is still refused."""
    a, b = _frame(0), _frame(1, (160, 90))
    both = detector.detect_batch([a, b])
    single = detector.detect(b)
    assert len(both) == 2 and len(both[1]) == len(single)
    np.testing.assert_allclose(both[1].score, single.score, atol=1e-5)  # batching moves the last float bits
    no_image = Frame("n", 0, "", None, a.cameras, a.radar, None, Pose.identity())
    with pytest.raises(ValueError, match="mix loaded and missing images"):
        detector.detect_batch([a, no_image])


def test_inference_threads() -> None:
    assert inference_threads(3) == 3
    cpus = len(os.sched_getaffinity(0))
    assert inference_threads(0) == cpus
    with pytest.raises(ValueError, match="threads must be >= 0"):
        inference_threads(-1)


def test_a_teacher_fed_one_lidar_sweep_is_refused(synth_root) -> None:
    """A teacher trained on N accumulated sweeps refuses a single-sweep frame (it would run motion-blind and
    predict near-zero velocities silently); with the configured count it runs."""
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.inference.detector import Detector
    from imkd_ros.model import ModelConfig, Teacher
    from imkd_ros.model.errors import ModelInputError

    cfg = ModelConfig.tiny(("lidar",))
    assert cfg.lidar.sweeps > 1
    det = Detector(Teacher(config=cfg))
    token = NuScenesReader(synth_root, load_image=False).split_samples("synth_val")[0]
    one = NuScenesReader(synth_root, load_image=False, lidar_sweeps=1).frame(token)
    with pytest.raises(ModelInputError, match=f"trained on {cfg.lidar.sweeps} accumulated sweeps"):
        det.detect(one)
    full = NuScenesReader(synth_root, load_image=False, lidar_sweeps=cfg.lidar.sweeps).frame(token)
    det.detect(full)
