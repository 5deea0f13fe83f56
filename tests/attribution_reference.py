"""Edge scores the slow, obvious way, for checking attribution: every edge's gradient taken on its own."""

import torch

from circuits.data import alternative, kl, logit_diff
from circuits.runs import as_heads, node_outputs


def clean_and_corrupted_runs(bridge, layout, batch):
    """(clean logits, clean node outputs, corrupted logits, corrupted node outputs)."""
    return (*node_outputs(bridge, layout, batch.clean), *node_outputs(bridge, layout, batch.corrupted))


def direct_scores(bridge, layout, batch, runs, edges, metric="logit_diff", at_corrupted=False):
    """grad x activation difference for each sampled edge, each gradient taken on its own at the edge's input."""
    clean_logits, clean_out, corrupted_logits, corrupted_out = runs
    alt = alternative(batch.answer(corrupted_logits), batch.labels)
    out = []
    for i in edges:
        src, dst = layout.src[i].item(), layout.dst[i].item()
        site = next(s for s in layout.dests if s.start <= dst < s.stop)
        grabbed = {}

        def grab(x, hook):
            grabbed["x"] = x.clone().requires_grad_(True)
            return grabbed["x"]

        with bridge.hooks(fwd_hooks=[(site.hook, grab)]):
            logits = batch.answer(bridge(batch.corrupted if at_corrupted else batch.clean))
        value = kl(logits, batch.answer(clean_logits)).sum() if metric == "kl" else logit_diff(logits, batch.labels, alt).sum()
        grad = as_heads(torch.autograd.grad(value, grabbed["x"])[0], site)[:, :, dst - site.start]
        delta = corrupted_out[:, :, src] - clean_out[:, :, src]
        out.append((delta * grad).sum().item() / len(batch))
    return torch.tensor(out)
