"""The zoo recipe's pretraining loop on a tiny config: both objectives learn, and a resumed run
ends with exactly the weights of an uninterrupted one."""


import pytest
import torch

from interp.architecture import ArchConfig
from interp.pretrain import PretrainConfig, pretrain

TINY = dict(batch_size=8, seq_len=32, warmup=2, checkpoint_every=3)


@pytest.mark.parametrize("objective,causal", [("ar", True), ("llada", False)])
def test_resume_reproduces_uninterrupted_run(tmp_path, objective, causal):
    cfg = PretrainConfig(arch=ArchConfig(d_model=32, n_layers=1, n_heads=2, d_mlp=64, causal=causal),
                         objective=objective, steps=6, **TINY)
    full, log = pretrain(cfg, tmp_path / "full", resume=False)
    # a run "killed" after its step-3 checkpoint (steps 0-2 see the same warm-up/peak lr whatever the
    # total), then resumed to the end
    pretrain(PretrainConfig(**{**cfg.__dict__, "steps": 4}), tmp_path / "killed", resume=False)
    assert (tmp_path / "killed" / "checkpoint").exists()
    resumed, _ = pretrain(cfg, tmp_path / "killed", resume=True)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert log[0]["loss"] > 0
