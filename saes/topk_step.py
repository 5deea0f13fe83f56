"""A fast training step for sae-lens's `TopKTrainingSAE`: the same parameters, the same loss (MSE summed
over d_in and averaged over the batch, plus AuxK on dead latents), computed sparsely.

sae-lens's step decodes and back-propagates through dense [batch, d_sae] tensors, so it pays for three
batch x d_in x d_sae matmuls although only k latents per row are non-zero. Here the encoder matmul runs
once, densely, without autograd; the k chosen pre-activations re-enter autograd through `GatherLinear`,
whose backward touches only the chosen (row, latent) pairs; decoding is an `embedding_bag` over the k
active decoder rows. `tests/saes/test_topk_step.py` checks loss and gradients against
`TopKTrainingSAE.training_forward_pass`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class GatherLinear(torch.autograd.Function):
    """`(x @ W + b).gather(-1, idx)` given the precomputed gathered values; sparse backward."""

    @staticmethod
    def forward(ctx, x, W, b, idx, gathered):
        ctx.save_for_backward(x, W, idx)
        return gathered

    @staticmethod
    def backward(ctx, grad):
        x, W, idx = ctx.saved_tensors
        d_sae = W.shape[1]
        flat_idx = idx.reshape(-1)
        # d x[r] = sum_j grad[r, j] * W[:, idx[r, j]]
        grad_x = F.embedding_bag(idx, W.t().contiguous(), per_sample_weights=grad, mode="sum")
        # d W[:, c] = sum over (r, j) with idx[r, j] == c of grad[r, j] * x[r]
        rows = torch.arange(idx.shape[0], device=idx.device).repeat_interleave(idx.shape[1])
        coo = torch.sparse_coo_tensor(torch.stack([flat_idx, rows]), grad.reshape(-1), (d_sae, x.shape[0]),
                                      check_invariants=False)
        grad_W = torch.sparse.mm(coo, x).t()
        grad_b = torch.zeros(d_sae, dtype=grad.dtype, device=grad.device).index_add_(0, flat_idx, grad.reshape(-1))
        return grad_x, grad_W, grad_b, None, None


def sparse_decode(idx: torch.Tensor, acts: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
    """sum_j acts[r, j] * W_dec[idx[r, j]] for every row r (no bias)."""
    return F.embedding_bag(idx, W_dec, per_sample_weights=acts, mode="sum")


def topk_train_step(sae, x: torch.Tensor, dead_mask: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Loss terms of `sae.training_forward_pass` for input `x`, plus the chosen latents and their values.

    Returns a dict with `loss` (to back-propagate), `mse_loss`, `auxiliary_reconstruction_loss`,
    `indices` [B, k], `acts` [B, k] (post-ReLU latent activations) and `sae_out` [B, d_in].
    """
    cfg = sae.cfg
    if cfg.normalize_activations in ("constant_norm_rescale", "layer_norm"):
        raise ValueError("the fast Top-K step supports normalize_activations none or expected_average_only_in")
    sae_in = x.to(sae.dtype) - sae.b_dec * cfg.apply_b_dec_to_input
    with torch.no_grad():
        pre = torch.addmm(sae.b_enc, sae_in, sae.W_enc)
    norms = sae.W_dec.norm(dim=-1) if cfg.rescale_acts_by_decoder_norm else None
    with torch.no_grad():
        score = pre * norms if norms is not None else pre
        idx = score.topk(cfg.k, dim=-1, sorted=False).indices

    def chosen(indices):
        """Differentiable hidden_pre (sae-lens's, decoder-norm scaled) at `indices`, and the decoder weights."""
        value = GatherLinear.apply(sae_in, sae.W_enc, sae.b_enc, indices, pre.gather(-1, indices))
        if norms is None:
            return value, value
        n = norms[indices]
        return value * n, n

    hidden, n = chosen(idx)
    acts = hidden.relu()
    dec_weights = acts / n if norms is not None else acts
    sae_out = sparse_decode(idx, dec_weights, sae.W_dec) + sae.b_dec
    mse = (sae_out - x).pow(2).sum(-1).mean()
    aux = sae_out.new_tensor(0.0)
    num_dead = int(dead_mask.sum()) if dead_mask is not None else 0
    if num_dead:
        k_aux = x.shape[-1] // 2
        scale = min(num_dead / k_aux, 1.0)
        k_aux = min(k_aux, num_dead)
        with torch.no_grad():  # top k_aux among the dead columns only: cheap while few latents are dead
            dead_idx = dead_mask.nonzero().squeeze(1)
            aux_idx = dead_idx[score.index_select(1, dead_idx).topk(k_aux, dim=-1, sorted=False).indices]
        aux_hidden, aux_n = chosen(aux_idx)
        aux_w = aux_hidden / aux_n if norms is not None else aux_hidden
        residual = (x - sae_out).detach()
        recons = sparse_decode(aux_idx, aux_w, sae.W_dec)
        aux = cfg.aux_loss_coefficient * scale * (recons - residual).pow(2).sum(-1).mean()
    return {"loss": mse + aux, "mse_loss": mse, "auxiliary_reconstruction_loss": aux,
            "indices": idx, "acts": acts.detach(), "sae_out": sae_out.detach()}
