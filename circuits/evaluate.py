"""How well a circuit stands in for the model: every edge outside it is patched from the corrupted run.

- faithfulness (the paper's): 100 * (1 - |B - C| / B), B = KL(clean full model || corrupted full model),
  C = KL(circuit on the clean prompt || corrupted full model), each the mean over examples of the sum over the
  answer's positions (circuits/data.py). 100 = the circuit moves the output as far from the corrupted one as the full model does;
  0 = the circuit behaves like the corrupted model.
- logit (and probability) difference recovered: 100 * (LD_circuit - LD_corrupted) / (LD_clean - LD_corrupted), LD as
  in `data.py`; a range answer (greater-than) has only the probability difference.
- accuracy: the circuit's top token is the answer's at every answer position, the answer's prefix fed back, or in
  the range for a range answer (and the full model's, for reference).
"""

from __future__ import annotations

from collections import defaultdict
from math import nan

import torch
from tqdm.auto import tqdm

from .data import TaskBatch, alternative, kl
from .layout import Layout
from .runs import node_outputs, patched_logits


@torch.no_grad()
def evaluate_masks(bridge, layout: Layout, batches: list[TaskBatch], masks: list[torch.Tensor],
                   show_progress: bool = False) -> list[dict]:
    """One result dict per boolean edge mask (True = in the circuit), sharing the clean and corrupted runs."""
    diffs = ("prob_diff",) if any(b.signs is not None for b in batches) else ("logit_diff", "prob_diff")
    sums = [defaultdict(float) for _ in masks]
    full = defaultdict(float)
    patches = [(layout.valid & ~layout.to_matrix(m)).float() for m in masks]
    n = 0
    bar = tqdm(total=len(batches) * len(masks), desc="evaluate circuit", disable=not show_progress)
    for batch in batches:
        clean, _ = node_outputs(bridge, layout, batch.clean)
        corrupted, corrupted_out = node_outputs(bridge, layout, batch.corrupted)
        clean, corrupted = batch.answer(clean), batch.answer(corrupted)
        alt = alternative(corrupted, batch.labels)
        full["B"] += kl(corrupted, clean).sum().item()  # KL(clean || corrupted)
        full["correct_clean"] += batch.hits(clean).sum().item()
        full["correct_corrupted"] += batch.hits(corrupted).sum().item()
        for d in diffs:
            full[d + "_clean"] += batch.score(d, clean, alt).sum().item()
            full[d + "_corrupted"] += batch.score(d, corrupted, alt).sum().item()
        for s, patch in zip(sums, patches):
            out = batch.answer(patched_logits(bridge, layout, batch.clean, corrupted_out, patch))
            s["C"] += kl(corrupted, out).sum().item()  # KL(circuit || corrupted)
            s["kl_to_clean"] += kl(out, clean).sum().item()
            s["correct"] += batch.hits(out).sum().item()
            for d in diffs:
                s[d] += batch.score(d, out, alt).sum().item()
            bar.update()
        n += len(batch)
    bar.close()
    B = full["B"] / n
    results = []
    for s, m in zip(sums, masks):
        C = s["C"] / n
        r = {"share_kept": m.float().mean().item(), "n_edges": int(m.sum()),
             "faithfulness": 100 * (1 - abs(B - C) / B) if B > 0 else float("nan"),
             "accuracy": s["correct"] / n, "kl_full_clean_vs_corrupted": B, "kl_circuit_vs_corrupted": C,
             "kl_clean_vs_circuit": s["kl_to_clean"] / n,
             "accuracy_full_model": full["correct_clean"] / n, "accuracy_corrupted": full["correct_corrupted"] / n}
        for d in ("logit_diff", "prob_diff"):  # a range answer has no logit difference: None
            on, hi, lo = (s[d] / n, full[d + "_clean"] / n, full[d + "_corrupted"] / n) if d in diffs else (None,) * 3
            r |= {f"{d}_recovered": (100 * (on - lo) / (hi - lo) if hi != lo else nan) if on is not None else None,
                  f"{d}_circuit": on, f"{d}_clean": hi, f"{d}_corrupted": lo}
        results.append(r)
    return results


def evaluate_circuit(bridge, layout: Layout, batches: list[TaskBatch], in_graph: torch.Tensor) -> dict:
    return evaluate_masks(bridge, layout, batches, [in_graph])[0]
