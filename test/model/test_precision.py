"""Mixed-precision training (imkd_ros.model.precision): the network runs in bfloat16 under autocast, every loss in
float32, BEV sums accumulate in float32, and a bf16 run writes float32 weights that say how they were trained."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from imkd_ros.core.errors import InputError
from imkd_ros.data.dataset import collate_frames
from imkd_ros.data.reader import NuScenesReader
from imkd_ros.model.bev_scatter import scatter_sum
from imkd_ros.model.checkpoint import load_checkpoint
from imkd_ros.model.precision import float32, full_precision, training_autocast
from imkd_ros.model.preprocess import shrink_frame
from imkd_ros.model.student import Student
from imkd_ros.training.train import TrainConfig, model_config_for, step_losses, train


@dataclass(frozen=True)
class _Pair:
    a: torch.Tensor
    b: list[torch.Tensor]


def test_float32_casts_every_floating_tensor_and_nothing_else() -> None:
    x = {
        "pair": _Pair(torch.ones(2, dtype=torch.bfloat16), [torch.zeros(1, dtype=torch.float16)]),
        "index": torch.arange(3),
        "t": (torch.ones(1, dtype=torch.bfloat16), 4),
    }
    y = float32(x)
    assert y["pair"].a.dtype == torch.float32 and y["pair"].b[0].dtype == torch.float32
    assert y["index"].dtype == torch.int64 and y["t"][1] == 4 and y["t"][0].dtype == torch.float32
    assert x["pair"].a.dtype == torch.bfloat16  # the input is not changed


def test_full_precision_turns_autocast_off_and_casts_the_arguments() -> None:
    seen: dict[str, object] = {}

    @full_precision
    def loss(p: torch.Tensor, *, q: torch.Tensor) -> torch.Tensor:
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        seen["dtypes"] = (p.dtype, q.dtype)
        return (p @ q).sum()

    w = torch.randn(8, 8, requires_grad=True)
    with training_autocast("bf16", "cpu"):
        h = torch.randn(4, 8) @ w  # autocast: bfloat16
        assert h.dtype == torch.bfloat16
        out = loss(h, q=torch.randn(8, 2))
    assert seen == {"autocast": False, "dtypes": (torch.float32, torch.float32)}
    assert out.dtype == torch.float32
    out.backward()  # the cast keeps the graph
    assert w.grad is not None and w.grad.dtype == torch.float32


def test_scatter_sum_accumulates_bf16_values_in_float32() -> None:
    # 4096 values of 1 + 2^-7 (exact in bfloat16) into one cell: a bfloat16 sum stops growing at 256
    values = torch.full((1, 4096, 1), 1.0 + 2**-7, dtype=torch.bfloat16)
    out = scatter_sum(values, torch.zeros(1, 4096, dtype=torch.int64), 1)
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(4096 * (1.0 + 2**-7), rel=1e-6)


def test_bf16_step_runs_the_network_in_bf16_and_the_losses_in_fp32(synth_root: Path) -> None:
    cfg = model_config_for("fusion", "tiny")
    reader = NuScenesReader(
        dataroot=synth_root, version="v1.0-synth", radar_sweeps=6, lidar_sweeps=1, load_image=True, load_lidar=True
    )
    batch = collate_frames([shrink_frame(reader.frame(t), cfg) for t in reader.split_samples("synth_train")[:4]])
    torch.manual_seed(0)
    model = Student(config=cfg).train()
    conv_dtypes: list[torch.dtype] = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(lambda _m, _i, o: conv_dtypes.append(o.dtype))
    ref = step_losses(model, batch, model)
    assert set(conv_dtypes) == {torch.float32}
    conv_dtypes.clear()
    got = step_losses(model, batch, model, precision="bf16")
    assert torch.bfloat16 in conv_dtypes  # the network ran under autocast
    for name, v in got.as_dict().items():
        assert v.dtype == torch.float32 and torch.isfinite(v), name
        assert float(v.detach()) == pytest.approx(float(ref.as_dict()[name].detach()), rel=0.05, abs=1e-3), name
    got.total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_a_bf16_run_writes_float32_weights_and_records_its_precision(synth_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.pt"
    cfg = TrainConfig(epochs=1, batch_size=4, seed=0, max_steps=2, precision="bf16")
    res = train(synth_root, out, model_config_for("fusion", "tiny"), cfg, progress=False)
    assert res.steps == 2 and all(torch.isfinite(torch.tensor(res.losses)))
    ck = load_checkpoint(out)
    assert ck.meta["train"]["precision"] == "bf16"
    assert {v.dtype for v in ck.state_dict.values() if v.is_floating_point()} == {torch.float32}


def test_an_unknown_precision_is_refused() -> None:
    with pytest.raises(InputError, match="precision"):
        TrainConfig(precision="fp16")
