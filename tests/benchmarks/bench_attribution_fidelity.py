"""How well attribution scores rank edges by their true effect: every edge of the graph patched alone.

    python tests/benchmarks/bench_attribution_fidelity.py [--model pythia-mini] [--tuned DIR] [--n 32]

For each model (the base zoo model, and a fine-tuned full checkpoint given by --tuned), metric and method:
Spearman between the score and the metric's change when the edge alone is patched from the corrupted run.
KL's effect is never negative, so KL compares |score|; the logit difference compares signed values.
Writes runs/bench-attribution-fidelity.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from circuits.attribution import AttributionConfig, attribute
from circuits.comparison import spearman
from circuits.data import alternative, kl, logit_diff, task_batches
from circuits.graph import Graph
from circuits.layout import Layout
from circuits.runs import node_outputs, patched_logits
from interp.loading import load_model


@torch.no_grad()
def single_edge_effects(bridge, layout, batch) -> dict[str, torch.Tensor]:
    clean, _ = node_outputs(bridge, layout, batch.clean)
    corrupted, corrupted_out = node_outputs(bridge, layout, batch.corrupted)
    clean = batch.answer(clean)
    alt = alternative(batch.answer(corrupted), batch.labels)
    base_ld = logit_diff(clean, batch.labels, alt)
    effects = {"kl": [], "logit_diff": []}
    for i in range(len(layout.src)):
        patch = torch.zeros(layout.n_src, layout.n_dst)
        patch[layout.src[i], layout.dst[i]] = 1.0
        out = batch.answer(patched_logits(bridge, layout, batch.clean, corrupted_out, patch))
        effects["kl"].append(kl(out, clean).mean().item())
        effects["logit_diff"].append((logit_diff(out, batch.labels, alt) - base_ld).mean().item())
    return {k: torch.tensor(v) for k, v in effects.items()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="pythia-mini")
    p.add_argument("--tuned", default=None, help="a fine-tuned model directory (e.g. a full fine-tuning checkpoint)")
    p.add_argument("--task", default="add_sub")
    p.add_argument("--n", type=int, default=32)
    args = p.parse_args()
    lines = [f"{args.task}, {args.n} circuit-split prompts, every edge patched alone", "",
             "| model | metric | EAP | EAP-IG (5 steps) |", "|---|---|---|---|"]
    for name in [args.model] + ([args.tuned] if args.tuned else []):
        m = load_model(name, hooks_for_edges=True)
        layout = Layout(Graph.from_model(m.model))
        batch = task_batches(m.tokenizer, args.task, n=args.n, batch_size=args.n)[0]
        effects = single_edge_effects(m.bridge, layout, batch)
        for metric in ("kl", "logit_diff"):
            rhos = []
            for method in ("eap", "eap-ig"):
                s = attribute(m.bridge, layout, [batch], AttributionConfig(method=method, metric=metric))
                rhos.append(spearman(s.abs() if metric == "kl" else s, effects[metric]))
            lines.append(f"| {Path(name).name if name != args.model else name} | {metric} | {rhos[0]:.3f} | {rhos[1]:.3f} |")
            print(lines[-1], flush=True)
    out = Path("runs/bench-attribution-fidelity.md")
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
