"""AR vs diffusion layer comparison (CLI: `interp compare-sae-layers`): one Top-K SAE on the residual
stream after every block of each model, all layers of a model trained from one activation stream, and
one table of delta CE per layer. DLM-Scope reports that splicing an SAE into early diffusion-LM layers
can lower the loss; this table says whether it does here.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from .config import SAETrainConfig, sae_name


def compare_layers(models: tuple[str, ...] = ("pythia-mini", "mdlm-mini"), base: SAETrainConfig | None = None,
                   out: str | Path = "runs/compare-sae-layers", resume: bool = False) -> dict:
    """Train (or reuse finished) per-model runs under `out`; return and write {model: {layer: metrics}}."""
    from interp.rundir import RunDir

    base = base or SAETrainConfig()
    run = RunDir(out, "compare-sae-layers", atomic=False)  # holds one train-sae run per model
    run.check(resume=True, reuse_finished=True)
    with run.writing(resume=True, reuse_finished=True) as out:
        return _compare(models, base, out, resume)


def _compare(models: tuple[str, ...], base: SAETrainConfig, out: Path, resume: bool) -> dict:
    from interp.loading import load_model

    from .train import train_sae

    table: dict[str, dict[int, dict]] = {}
    for model in models:
        n_layers = len(load_model(model).bridge.blocks)
        hooks = [f"blocks.{l}.hook_resid_post" for l in range(n_layers)]
        run_dir = out / Path(model).name
        cfg = replace(base, model=model, hooks=hooks, k=[base.k[0]], out=str(run_dir))
        if (run_dir / "metrics.json").exists():
            metrics = json.loads((run_dir / "metrics.json").read_text())
        else:
            metrics = train_sae(cfg, resume=resume and run_dir.with_name(run_dir.name + ".partial").exists()).metrics
        table[model] = {l: metrics[sae_name(h, cfg.k[0])] for l, h in enumerate(hooks)}
    (out / "comparison.json").write_text(json.dumps(table, indent=2))
    (out / "comparison.md").write_text(markdown_table(table))
    return table


def markdown_table(table: dict) -> str:
    """One row per layer; per model ΔCE, EV and clean CE (diffusion models add the visible-token ΔCE)."""
    models = list(table)
    layers = sorted({int(l) for m in models for l in table[m]})

    def row(m, l):
        return table[m].get(l) or table[m].get(str(l))

    cols = {m: ["delta_ce", "explained_variance", "ce_clean"] + (["delta_ce_unmasked"] if "delta_ce_unmasked" in row(m, layers[0]) else [])
            for m in models}
    names = {"delta_ce": "ΔCE", "explained_variance": "EV", "ce_clean": "CE clean", "delta_ce_unmasked": "ΔCE visible"}
    head = "| layer | " + " | ".join(f"{m} {names[c]}" for m in models for c in cols[m]) + " |"
    sep = "|---|" + "---|" * sum(len(c) for c in cols.values())
    lines = [head, sep]
    for l in layers:
        cells = ["–" if row(m, l)[c] is None  # CE not measured: the model has no LM head
                 else f"{row(m, l)[c]:+.4f}" if c.startswith("delta") else f"{row(m, l)[c]:.3f}"
                 for m in models for c in cols[m]]
        lines.append(f"| {l} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
