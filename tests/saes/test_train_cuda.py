"""`train-sae --device cuda`: the same short runs (AR and diffusion) on the GPU as on the CPU, and a GPU run
resumed. Skipped without CUDA."""

import json

import pytest
import torch

from saes import SAETrainConfig, train_sae
from saes.feature_store import FeatureStore
from saes.train import load_sae

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SHORT = dict(tokens=40 * 1024, batch_size=1024, lr=3e-3, eval_tokens=8192, feature_tokens=4096, checkpoint_every=4)
NAME = "blocks.2.hook_resid_post-k32"


@pytest.mark.parametrize("model, min_ev", [("pythia-mini", 0.85), ("mdlm-mini", 0.6)])
def test_cuda_run_matches_cpu_run(tmp_path, model, min_ev):
    gpu = train_sae(SAETrainConfig(model, device="cuda", out=str(tmp_path / "gpu"), **SHORT), show_progress=False)
    cpu = train_sae(SAETrainConfig(model, device="cpu", out=str(tmp_path / "cpu"), **SHORT), show_progress=False)
    g, c = gpu.metrics[NAME], cpu.metrics[NAME]
    assert g["l0"] == 32 and g["explained_variance"] >= min_ev
    # the initialisation draws from the GPU's generator, so only the quality is shared, not the weights
    assert abs(g["explained_variance"] - c["explained_variance"]) < 0.03
    assert abs(g["delta_ce"] - c["delta_ce"]) < 0.5 * c["delta_ce"] + 0.02
    sae = load_sae(gpu.run_dir / "saes" / NAME)  # saved from the GPU, loads on the CPU
    assert sae.W_dec.device.type == "cpu" and sae.cfg.k == 32
    assert len(FeatureStore(gpu.run_dir / "saes" / NAME).summary["density"]) == 2048


def test_cuda_run_resumes(tmp_path, monkeypatch):
    import saes.trainer as trainer

    cfg = SAETrainConfig(device="cuda", out=str(tmp_path / "r"),
                         **{**SHORT, "tokens": 10 * 1024, "checkpoint_every": 3})
    real, calls = trainer.train_step, {"n": 0}

    def dying(*a, **k):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt  # the last checkpoint is at step 6
        return real(*a, **k)

    monkeypatch.setattr(trainer, "train_step", dying)
    with pytest.raises(KeyboardInterrupt):
        train_sae(cfg, show_progress=False)
    monkeypatch.setattr(trainer, "train_step", real)
    result = train_sae(cfg, resume=True, show_progress=False)  # the trainer state comes back onto the GPU
    assert json.loads((result.run_dir / "curves.json").read_text())[-1]["step"] == 10
    assert result.metrics[NAME]["l0"] == 32
