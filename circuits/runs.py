"""The three forward passes edge attribution and circuit evaluation are made of, as Bridge hooks.

- `node_outputs`: logits and every source node's output, stacked [B, T, n_src, d] (or at a span of positions).
- `patched_logits`: a run in which each edge (u -> v) reads `patch[u, v]` of the corrupted run's output of u
  and the rest of this run's own output of u. `patch` may be fractional and may carry gradients (that is
  how the tests check EAP against a direct derivative). Patching by difference at v's input means that u's
  contribution along every other edge is untouched, which is what an edge (not a node) intervention is.
- gradient runs live in `attribution.py`; they use the same sites.
"""

from __future__ import annotations

import torch

from .layout import Layout, Site


def as_heads(x: torch.Tensor, site: Site) -> torch.Tensor:
    """[B, T, H, d] for a per-head hook, [B, T, 1, d] for a whole-residual one."""
    return x if site.heads else x.unsqueeze(2)


def from_heads(x: torch.Tensor, site: Site) -> torch.Tensor:
    return x if site.heads else x[:, :, 0]


@torch.no_grad()
def node_outputs(bridge, layout: Layout, tokens: torch.Tensor,
                 positions: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and the source outputs at `positions`, written into one tensor as the sources fire (no list
    and concatenation, which would hold them twice)."""
    out = None

    def keep(site):
        def fn(x, hook):
            nonlocal out
            x = as_heads(x, site)[:, positions]
            if out is None:
                out = x.new_empty(x.shape[0], x.shape[1], layout.n_src, x.shape[-1])
            out[:, :, site.start:site.stop] = x
        return fn

    with bridge.hooks(fwd_hooks=[(s.hook, keep(s)) for s in layout.sources]):
        logits = bridge(tokens)
    return logits, out


def patched_logits(bridge, layout: Layout, tokens: torch.Tensor, corrupted_outputs: torch.Tensor,
                   patch: torch.Tensor) -> torch.Tensor:
    """Logits of the run on `tokens` with edges patched from `corrupted_outputs` by the [n_src, n_dst] `patch`."""
    deltas: list[tuple[Site, torch.Tensor]] = []  # corrupted minus this run's output, per source in forward order

    def record(site):
        def fn(x, hook):
            deltas.append((site, corrupted_outputs[:, :, site.start:site.stop] - as_heads(x, site)))
        return fn

    def mix(site):
        def fn(x, hook):
            # source by source rather than one concatenation: no copy of every delta at every destination,
            # and sources with nothing patched into this destination cost nothing
            total = None
            for src, d in deltas:
                p = patch[src.start:src.stop, site.start:site.stop]
                if not p.requires_grad and not p.any():
                    continue
                term = torch.einsum("btsd,sk->btkd", d, p.to(d.dtype))
                total = term if total is None else total + term
            return x if total is None else x + from_heads(total, site)
        return fn

    hooks = [(s.hook, record(s)) for s in layout.sources] + [(s.hook, mix(s)) for s in layout.dests]
    with bridge.hooks(fwd_hooks=hooks):
        return bridge(tokens)
