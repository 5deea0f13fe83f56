"""A fast training step for sae-lens's `TopKTrainingSAE`: the same parameters, the same loss (MSE summed
over d_in and averaged over the batch, plus AuxK on dead latents), computed sparsely.

sae-lens's step decodes and back-propagates through dense [batch, d_sae] tensors, so it pays for three
batch x d_in x d_sae matmuls although only k latents per row are non-zero. Here the encoder matmul runs
once, densely, in row blocks, each block's top-k is taken while the block is still at hand, and everything
after that touches only the chosen (row, latent) pairs: decoding is an `embedding_bag` over the active
decoder rows, and `_TopKLoss.backward` computes the parameter gradients by hand from those pairs (sorted by
latent once, shared by the main and the AuxK terms). `tests/saes/test_topk_step.py` checks loss and
gradients against `TopKTrainingSAE.training_forward_pass`.
"""

from __future__ import annotations

import contextlib
import warnings

import torch
import torch.nn.functional as F

# pre-activations held at once by the row-blocked encoder (fp32: 64 MiB); a [4096, 16384] batch would
# otherwise be a fresh 256 MiB allocation every step, paid again in page faults and cache misses
ROW_BLOCK_ELEMENTS = 1 << 24


def top_columns(score: torch.Tensor, k: int, fanin: int = 8) -> torch.Tensor:
    """Column indices of the k largest entries of each row of `score` [R, n] (unsorted), as `topk` gives.

    Columns are dealt into `fanin` interleaved groups: group j holds columns j, j + n/fanin, ... The k
    largest entries all lie in the k groups with the largest maxima (an entry outside them is beaten by k
    group maxima), so the group maxima are reduced recursively and only fanin * k candidates are ranked.
    torch's CPU `topk` costs several ns per entry; the strided max is a vectorised pass.
    """
    rows, n = score.shape
    if n <= fanin * k or n % fanin:
        return score.topk(k, dim=-1, sorted=False).indices
    width = n // fanin
    top_groups = top_columns(score.view(rows, fanin, width).amax(1), k, fanin)  # [rows, k] group ids
    steps = torch.arange(0, n, width, device=score.device).view(1, fanin, 1)
    candidates = (top_groups.unsqueeze(1) + steps).view(rows, fanin * k)  # the columns of those groups
    return candidates.gather(1, score.gather(1, candidates).topk(k, dim=-1, sorted=False).indices)


def _encode_select(sae_in, W_enc, b_enc, norms, k: int, dead_idx, k_aux: int):
    """Chosen latents [B, k + k_aux] (top k, then the top k_aux dead ones) and their values of sae-lens's
    hidden_pre: `sae_in @ W_enc + b_enc` (matmul, then bias, as sae-lens computes it), times the decoder
    row norms under rescale_acts_by_decoder_norm."""
    batch, d_sae = sae_in.shape[0], W_enc.shape[1]
    rows = max(1, min(batch, ROW_BLOCK_ELEMENTS // d_sae))
    buf = sae_in.new_empty(rows, d_sae)  # reused by every block
    idx = torch.empty(batch, k + k_aux, dtype=torch.long, device=sae_in.device)
    values = sae_in.new_empty(batch, k + k_aux)
    for start in range(0, batch, rows):
        block = slice(start, min(batch, start + rows))
        score = torch.mm(sae_in[block], W_enc, out=buf[:block.stop - start]).add_(b_enc)
        if norms is not None:
            score.mul_(norms)
        idx[block, :k] = top_columns(score, k)
        if k_aux:  # dead columns only: sae-lens masks the live ones with -inf
            idx[block, k:] = dead_idx[top_columns(score.index_select(1, dead_idx), k_aux)]
        values[block] = score.gather(1, idx[block])
    return idx, values


@contextlib.contextmanager
def _one_thread():
    """torch's multi-threaded CPU sort and bincount are slower than one thread on 262k keys (tens of ms
    against a few: many synchronised passes), worst when another process holds a core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _by_latent(idx: torch.Tensor, d_sae: int):
    """The (row, slot) pairs of idx grouped by latent: the sort order, each latent's offset into it (d_sae + 1
    entries) and each sorted pair's row. Latent-major order reads each decoder / encoder row once, in order,
    and gathers from [B, d_in] tables small enough to stay in cache."""
    flat = idx.reshape(-1)
    with _one_thread():
        order = flat.argsort()
        counts = torch.bincount(flat, minlength=d_sae)
    offsets = torch.zeros(d_sae + 1, dtype=torch.long, device=idx.device)
    torch.cumsum(counts, 0, out=offsets[1:])
    return order, offsets, order // idx.shape[1]


def _sddmm(W_dec: torch.Tensor, table: torch.Tensor, offsets, rows) -> torch.Tensor:
    """out[p] = W_dec[c] . table[rows[p]] for the latent-major pairs p of latent c: the decoder's gradient with
    respect to each chosen activation (table = d loss / d reconstruction)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
        mask = torch.sparse_csr_tensor(offsets, rows, table.new_ones(len(rows)), (W_dec.shape[0], table.shape[0]),
                                       check_invariants=False)
        return torch.sparse.sampled_addmm(mask, W_dec, table.t(), beta=0).values()


def _transposed_bags(rows, table, offsets, weights, out: torch.Tensor, block: int = 2048) -> torch.Tensor:
    """out [d_in, d_sae] = (per latent c: sum of weights * table[rows] over c's bag).T, in latent blocks
    whose transposed copy is read from cache (a whole-matrix .t().contiguous() costs about twice as much);
    few blocks, since each op is a parallel region that waits for a busy machine's slowest thread."""
    d_sae = out.shape[1]
    for start in range(0, d_sae, block):
        stop = min(d_sae, start + block)
        lo, hi = int(offsets[start]), int(offsets[stop])
        sums = F.embedding_bag(rows[lo:hi], table, offsets[start:stop] - lo, per_sample_weights=weights[lo:hi],
                               mode="sum")
        out[:, start:stop].copy_(sums.t())
    return out


class _TopKLoss(torch.autograd.Function):
    """(mse, aux) of sae-lens's Top-K training loss as a function of (W_enc, b_enc, W_dec, b_dec).

    Slots 0..k-1 of each row are the top-k latents, slots k.. the AuxK latents. With decoder-norm rescaling
    (n = |W_dec rows|): h = pre * n, weight = relu(h) / n for the top-k and h / n for AuxK; without it,
    h = pre and the weights are relu(pre) and pre. The backward is that chain rule written out, so that no
    [B, d_sae] tensor and no second dense copy of a weight gradient is made."""

    @staticmethod
    def forward(ctx, W_enc, b_enc, W_dec, b_dec, x, dead_idx, opts):
        k, aux_coefficient, rescale, apply_b_dec = opts
        sae_in = x - b_dec if apply_b_dec else x
        norms = W_dec.norm(dim=-1) if rescale else None
        k_aux = min(x.shape[1] // 2, len(dead_idx)) if dead_idx is not None else 0
        idx, hidden = _encode_select(sae_in, W_enc, b_enc, norms, k, dead_idx, k_aux)
        inv = (1 / norms)[idx] if rescale else None  # sae-lens multiplies by 1 / norm
        act = torch.cat([hidden[:, :k].relu(), hidden[:, k:]], 1)  # AuxK takes its latents as they are
        weights = act * inv if rescale else act
        sae_out = F.embedding_bag(idx[:, :k], W_dec, per_sample_weights=weights[:, :k], mode="sum") + b_dec
        diff = sae_out - x
        mse = diff.pow(2).sum(-1).mean()
        aux, aux_diff, aux_scale = mse.new_zeros(()), None, 0.0
        if k_aux:
            aux_scale = aux_coefficient * min(len(dead_idx) / (x.shape[1] // 2), 1.0)
            recons = F.embedding_bag(idx[:, k:], W_dec, per_sample_weights=weights[:, k:], mode="sum")
            aux_diff = recons + diff  # recons - (x - sae_out)
            aux = aux_scale * aux_diff.pow(2).sum(-1).mean()
        ctx.save_for_backward(W_enc, W_dec, sae_in, idx, hidden, act, weights, diff, aux_diff, norms, inv)
        ctx.k, ctx.aux_scale, ctx.apply_b_dec = k, aux_scale, apply_b_dec
        acts = act[:, :k]
        ctx.mark_non_differentiable(idx, acts, sae_out)
        return mse, aux, idx[:, :k], acts, sae_out

    @staticmethod
    def backward(ctx, g_mse, g_aux, *_):
        W_enc, W_dec, sae_in, idx, hidden, act, weights, diff, aux_diff, norms, inv = ctx.saved_tensors
        k, batch, d_sae = ctx.k, diff.shape[0], W_dec.shape[0]
        table = diff * (2 * g_mse / batch)  # d loss / d sae_out, then d loss / d AuxK reconstruction
        order, offsets, rows = _by_latent(idx, d_sae)
        dec_rows = rows
        if aux_diff is not None:  # AuxK slots read the second half of the table
            table = torch.cat([table, aux_diff * (2 * ctx.aux_scale * g_aux / batch)])
            dec_rows = rows + batch * (order % idx.shape[1] >= k)
        grad_w = torch.empty_like(weights).view(-1).index_copy_(0, order, _sddmm(W_dec, table, offsets, dec_rows))
        grad_w = grad_w.view_as(weights)
        live = act > 0
        live[:, k:] = True  # AuxK has no ReLU
        flat = idx.reshape(-1)
        grad_norms = None
        if norms is not None:
            grad_h = grad_w * inv * live
            # via h = pre * n and weight = act * (1 / n); pre = h / n to rounding, which a gradient can take
            grad_n = (grad_h * hidden - grad_w * act * inv) * inv
            grad_norms = torch.zeros_like(norms).index_add_(0, flat, grad_n.reshape(-1))
            grad_pre = grad_h * norms[idx]
        else:
            grad_pre = grad_w * live
        grad_b_enc = torch.zeros_like(W_enc[0]).index_add_(0, flat, grad_pre.reshape(-1))
        grad_W_enc = _transposed_bags(rows, sae_in, offsets, grad_pre.reshape(-1)[order], torch.empty_like(W_enc))
        grad_W_dec = F.embedding_bag(dec_rows, table, offsets[:-1], per_sample_weights=weights.reshape(-1)[order],
                                     mode="sum")
        if grad_norms is not None:  # d |w| / d w = w / |w|
            grad_W_dec.addcmul_(W_dec, (grad_norms / norms).unsqueeze(1))
        grad_b_dec = table[:batch].sum(0)
        if ctx.apply_b_dec:  # sae_in = x - b_dec feeds every pre-activation: sum_r d pre[r] / d b_dec
            grad_b_dec -= W_enc @ grad_b_enc
        return grad_W_enc, grad_b_enc, grad_W_dec, grad_b_dec, None, None, None


def topk_train_step(sae, x: torch.Tensor, dead_mask: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Loss terms of `sae.training_forward_pass` for input `x`, plus the chosen latents and their values.

    Returns a dict with `loss` (to back-propagate), `mse_loss`, `auxiliary_reconstruction_loss`,
    `indices` [B, k], `acts` [B, k] (post-ReLU latent activations) and `sae_out` [B, d_in].
    `x` is data: no gradient flows back to it.
    """
    cfg = sae.cfg
    if cfg.normalize_activations in ("constant_norm_rescale", "layer_norm"):
        raise ValueError("the fast Top-K step supports normalize_activations none or expected_average_only_in")
    dead_idx = dead_mask.nonzero().squeeze(1) if dead_mask is not None and dead_mask.any() else None
    opts = (cfg.k, cfg.aux_loss_coefficient, cfg.rescale_acts_by_decoder_norm, cfg.apply_b_dec_to_input)
    mse, aux, idx, acts, sae_out = _TopKLoss.apply(sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec,
                                                   x.detach().to(sae.dtype), dead_idx, opts)
    return {"loss": mse + aux, "mse_loss": mse, "auxiliary_reconstruction_loss": aux,
            "indices": idx, "acts": acts, "sae_out": sae_out}
