"""The node benchmark's memory figures (``imkd bench --only node``: ``node_overload_rss_growth_mb``) and the
player's repeated sequence that makes the overload run long: the pieces, without running the benchmark (no timing
is asserted)."""

from __future__ import annotations

import os
import time

from imkd_ros.apps.node_bench import RssSampler, rss_growth_mb, rss_mb


def test_rss_growth_is_last_fifth_minus_first_fifth() -> None:
    assert rss_growth_mb([100.0] * 20) == 0.0
    flat_then_leak = [100.0] * 10 + [100.0 + 2 * k for k in range(10)]
    assert rss_growth_mb(flat_then_leak) == 115.0 - 100.0  # medians of [112..118] and of [100]*4
    assert rss_growth_mb([1.0, 2.0]) != rss_growth_mb([1.0, 2.0])  # NaN: too few samples


def test_rss_of_a_live_process_and_of_none() -> None:
    mine = rss_mb(os.getpid())
    assert 10.0 < mine < 1e6
    assert rss_mb(2**22 + 12345) != rss_mb(2**22 + 12345)  # no such process: NaN
    sampler = RssSampler(os.getpid(), period=0.01).start()
    blob = bytearray(64 * 2**20)  # touch 64 MB
    for i in range(0, len(blob), 4096):
        blob[i] = 1
    while len(sampler.samples) < 3:
        time.sleep(0.01)
    samples = sampler.stop()
    assert len(samples) >= 3 and max(samples) >= mine


def test_repeated_sequence_goes_forward_in_time() -> None:
    from imkd_ros.nodes.player import Event, repeated

    events = [Event(1_000, "radar", "r0", True, "s0"), Event(5_000, "camera", "c0", True, "s0")]
    out = repeated(events, 3, gap_ns=500)
    assert [e.stamp for e in out] == [1_000, 5_000, 5_500, 9_500, 10_000, 14_000]
    assert [e.token for e in out] == ["r0", "c0"] * 3 and repeated(events, 1) == events


def test_fresh_main_thread_reference_times_every_frame(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """The speed issue's reference runs in a fresh process from its main thread, on every synth_val frame, with the
    backend asked for: one time per frame and pass (no value is asserted, only that it measured what it says)."""
    import torch

    from imkd_ros.apps.node_bench import fresh_main_thread_ms
    from imkd_ros.data.reader import NuScenesReader
    from imkd_ros.data.synth import write_dataset
    from imkd_ros.model import ModelConfig, Student
    from imkd_ros.model.checkpoint import save_checkpoint

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the child's ONNX export goes there
    data = tmp_path / "data"
    write_dataset(data, scenes=2, samples_per_scene=2, seed=0, weathers=("clear",), camera_sweeps=False, workers=1)
    torch.manual_seed(0)
    cfg = ModelConfig.tiny()
    model = save_checkpoint(tmp_path / "tiny.pt", Student(config=cfg), cfg)
    frames = len(NuScenesReader(data, load_lidar=False).split_samples("synth_val"))
    for backend in ("torch", "onnxruntime", "openvino:fp32"):
        spans: dict[str, float] = {}
        times = fresh_main_thread_ms(data, model, 1, backend, repeats=2, spans=spans, gap_s=0.01)
        assert len(times) == 2 * frames and all(t > 0 for t in times), backend
        # the Detector's own spans of those calls: each within the call, the graph's only where there is one
        want = {"collate_ms", "run_ms", "boxes_ms"} | ({"graph_ms"} if backend != "torch" else set())
        assert set(spans) == want and sum(v for k, v in spans.items() if k != "graph_ms") <= max(times), spans
