"""The fast Top-K step trains the same sae-lens SAE as sae-lens's own step: equal loss and gradients."""

import pytest
import torch
from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.saes.sae import TrainStepInput

import saes.topk_step as topk_step
from saes.topk_step import top_columns, topk_train_step


def _sae(rescale: bool, seed: int = 0, apply_b_dec: bool = True) -> TopKTrainingSAE:
    torch.manual_seed(seed)
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=32, d_sae=256, k=8, rescale_acts_by_decoder_norm=rescale,
                                                apply_b_dec_to_input=apply_b_dec))
    with torch.no_grad():  # move off the symmetric init so every parameter's gradient is exercised
        for p in sae.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return sae


def _grads(sae):
    return {n: p.grad.clone() for n, p in sae.named_parameters()}


@pytest.mark.parametrize("rescale", [True, False])
@pytest.mark.parametrize("n_dead", [0, 5, 200])
@pytest.mark.parametrize("apply_b_dec", [True, False])
@pytest.mark.parametrize("row_block", [None, 20 * 256])  # None: one block; 20 rows: blocks of 20, 20, 20, 4
def test_fast_step_matches_sae_lens(rescale, n_dead, apply_b_dec, row_block, monkeypatch):
    if row_block:
        monkeypatch.setattr(topk_step, "ROW_BLOCK_ELEMENTS", row_block)
    sae = _sae(rescale, apply_b_dec=apply_b_dec)
    x = torch.randn(64, 32) * 3 + 1
    dead = torch.zeros(256, dtype=torch.bool)
    dead[torch.randperm(256)[:n_dead]] = True

    ref = sae.training_forward_pass(TrainStepInput(x, {}, dead, 0, False))
    ref.loss.backward()
    ref_grads = _grads(sae)
    sae.zero_grad()

    fast = topk_train_step(sae, x, dead)
    fast["loss"].backward()
    for key in ["mse_loss", "auxiliary_reconstruction_loss"]:
        torch.testing.assert_close(fast[key], ref.losses[key], rtol=1e-5, atol=1e-6)
    if n_dead:
        assert fast["auxiliary_reconstruction_loss"] > 0
    for name, g in _grads(sae).items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-6, msg=f"gradient of {name}")
    # identical sparse codes: the k chosen latents carry exactly sae-lens's activations
    dense = torch.zeros(64, 256).scatter_(-1, fast["indices"], fast["acts"])
    torch.testing.assert_close(dense, ref.feature_acts.detach())
    torch.testing.assert_close(fast["sae_out"], ref.sae_out.detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n,k", [(256, 8), (4096, 32), (1000, 7), (64, 64), (2048, 3)])
def test_top_columns_is_topk(n, k):
    torch.manual_seed(n + k)
    score = torch.randn(50, n) * torch.rand(n)  # columns of different scales, as after decoder-norm scaling
    got = top_columns(score, k).sort(-1).values
    torch.testing.assert_close(got, score.topk(k, dim=-1, sorted=False).indices.sort(-1).values, rtol=0, atol=0)
