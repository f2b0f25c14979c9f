"""nrf.training.optim: PyTorch's AdamW update, bit for bit, without importing torch._dynamo."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nrf.training.optim import AdamW, LinearDecay

SRC = Path(__file__).resolve().parents[2] / "src"


def _train(make_opt, make_sched, fused, steps=40, nan_at=None):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(7, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    model[0].bias.requires_grad_(False)  # no gradient: skipped, no state
    opt = make_opt(model.parameters(), fused)
    sched = make_sched(opt, steps)
    gen = torch.Generator().manual_seed(1)
    for t in range(steps):
        loss = model(torch.randn(32, 7, generator=gen)).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if fused and nan_at is not None:
            opt.found_inf = torch.tensor(1.0 if t >= nan_at else 0.0)
        opt.step()
        sched.step()
    return model.state_dict(), opt


def _torch_opt(params, fused):
    return torch.optim.AdamW(params, lr=3e-3, weight_decay=0.015, fused=fused)


def _torch_sched(opt, total):
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: max(0.0, 1.0 - t / total))


def _ours(params, fused):
    return AdamW(params, lr=3e-3, weight_decay=0.015, fused=fused)


@pytest.mark.parametrize("fused", [None, True])
def test_adamw_and_linear_decay_equal_torch_optim_bit_for_bit(fused):
    ref, ref_opt = _train(_torch_opt, _torch_sched, fused)
    got, opt = _train(_ours, LinearDecay, fused)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert opt.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"] == 0.0  # decayed to 0 at the last step
    assert len(opt.state) == 3 and all(int(s["step"]) == 40 for s in opt.state.values())  # the frozen bias has none


def test_found_inf_skips_the_fused_update_as_torch_optim_does():
    ref, _ = _train(_torch_opt, _torch_sched, True, nan_at=25)
    got, opt = _train(_ours, LinearDecay, True, nan_at=25)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert all(int(s["step"]) == 25 for s in opt.state.values())  # steps 26-40 skipped


def test_constant_learning_rate_without_a_scheduler():
    ref, _ = _train(_torch_opt, lambda opt, n: type("NoSched", (), {"step": lambda self: None})(), None)
    got, _ = _train(_ours, lambda opt, n: type("NoSched", (), {"step": lambda self: None})(), None)
    assert all(torch.equal(ref[k], got[k]) for k in ref)


@pytest.mark.parametrize("kwargs", [{"lr": -1.0}, {"lr": 1e-3, "weight_decay": -0.1},
                                    {"lr": 1e-3, "betas": (1.0, 0.9)}])
def test_invalid_hyperparameters_are_refused(kwargs):
    with pytest.raises(ValueError, match="AdamW"):
        AdamW([torch.nn.Parameter(torch.zeros(2))], **kwargs)


def test_nrf_and_linear_training_do_not_import_torch_dynamo():
    # the point of the module: ~2 s of CPU per training job (a fresh process: other tests import it)
    code = f"""
import sys
sys.path.insert(0, {str(SRC)!r})
import numpy as np
from nrf.models.nrf import NRFConfig
from nrf.training.loop import EncodingSplit, TrainConfig, train_linear, train_nrf
rng = np.random.default_rng(0)
feats = {{"tokens_shallow": rng.standard_normal((40, 4, 8)).astype(np.float32),
          "tokens_deep": rng.standard_normal((40, 4, 8)).astype(np.float32),
          "embedding": rng.standard_normal((40, 8)).astype(np.float32)}}
split = EncodingSplit(feats, rng.standard_normal((40, 30)).astype(np.float32))
coords = rng.uniform(-50, 50, (30, 3)).astype(np.float32)
model_config = NRFConfig(token_dim=8, n_tokens=4, embedding_dim=8, merger_token_dim=4, merger_dim=8, fourier_features=4,
                         depth=2, width=16)
train_nrf(split, split, coords, TrainConfig(batch_images=8, batch_voxels=10, max_steps=6, eval_every=3,
          patience=2), model_config=model_config)
train_linear(split, split, TrainConfig(batch_images=8, epochs=2))
assert "torch._dynamo" not in sys.modules, "training imported torch._dynamo"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]
