"""How well a circuit stands in for the model: every edge outside it is patched from the corrupted run.

- faithfulness (the paper's): 100 * (1 - |B - C| / B), B = KL(clean full model || corrupted full model),
  C = KL(circuit on the clean prompt || corrupted full model), each the mean over examples of the sum over the
  answer's positions (circuits/data.py). 100 = the circuit moves the output as far from the corrupted one as the full model does;
  0 = the circuit behaves like the corrupted model.
- logit difference recovered: 100 * (LD_circuit - LD_corrupted) / (LD_clean - LD_corrupted), LD as in `data.py`.
- accuracy: the circuit's top token is the answer's at every answer position, its own prefix fed back (and the
  full model's, for reference).
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .data import TaskBatch, alternative, kl, logit_diff
from .layout import Layout
from .runs import node_outputs, patched_logits


@torch.no_grad()
def evaluate_masks(bridge, layout: Layout, batches: list[TaskBatch], masks: list[torch.Tensor],
                   show_progress: bool = False) -> list[dict]:
    """One result dict per boolean edge mask (True = in the circuit), sharing the clean and corrupted runs."""
    sums = [dict.fromkeys(("C", "kl_to_clean", "ld", "correct"), 0.0) for _ in masks]
    full = dict.fromkeys(("B", "ld_clean", "ld_corrupted", "correct_clean", "correct_corrupted"), 0.0)
    patches = [(layout.valid & ~layout.to_matrix(m)).float() for m in masks]
    n = 0
    bar = tqdm(total=len(batches) * len(masks), desc="evaluate circuit", disable=not show_progress)
    for batch in batches:
        clean, _ = node_outputs(bridge, layout, batch.clean)
        corrupted, corrupted_out = node_outputs(bridge, layout, batch.corrupted)
        clean, corrupted = batch.answer(clean), batch.answer(corrupted)
        alt = alternative(corrupted, batch.labels)
        hits = lambda logits: (logits.argmax(-1) == batch.labels).all(-1).sum().item()
        full["B"] += kl(corrupted, clean).sum().item()  # KL(clean || corrupted)
        full["ld_clean"] += logit_diff(clean, batch.labels, alt).sum().item()
        full["ld_corrupted"] += logit_diff(corrupted, batch.labels, alt).sum().item()
        full["correct_clean"] += hits(clean)
        full["correct_corrupted"] += hits(corrupted)
        for s, patch in zip(sums, patches):
            out = batch.answer(patched_logits(bridge, layout, batch.clean, corrupted_out, patch))
            s["C"] += kl(corrupted, out).sum().item()  # KL(circuit || corrupted)
            s["kl_to_clean"] += kl(out, clean).sum().item()
            s["ld"] += logit_diff(out, batch.labels, alt).sum().item()
            s["correct"] += hits(out)
            bar.update()
        n += len(batch)
    bar.close()
    B, ld_clean, ld_corr = full["B"] / n, full["ld_clean"] / n, full["ld_corrupted"] / n
    results = []
    for s, m in zip(sums, masks):
        C, ld = s["C"] / n, s["ld"] / n
        results.append({
            "share_kept": m.float().mean().item(), "n_edges": int(m.sum()),
            "faithfulness": 100 * (1 - abs(B - C) / B) if B > 0 else float("nan"),
            "logit_diff_recovered": 100 * (ld - ld_corr) / (ld_clean - ld_corr) if ld_clean != ld_corr else float("nan"),
            "accuracy": s["correct"] / n, "kl_full_clean_vs_corrupted": B, "kl_circuit_vs_corrupted": C,
            "kl_clean_vs_circuit": s["kl_to_clean"] / n, "logit_diff_circuit": ld,
            "logit_diff_clean": ld_clean, "logit_diff_corrupted": ld_corr,
            "accuracy_full_model": full["correct_clean"] / n, "accuracy_corrupted": full["correct_corrupted"] / n,
        })
    return results


def evaluate_circuit(bridge, layout: Layout, batches: list[TaskBatch], in_graph: torch.Tensor) -> dict:
    return evaluate_masks(bridge, layout, batches, [in_graph])[0]
