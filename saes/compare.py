"""SAEs after every block, compared per layer. `compare_layers` (CLI: `interp compare-sae-layers`): an AR and a
diffusion model, one table of delta CE per layer; DLM-Scope reports that splicing an SAE into early
diffusion-LM layers can lower the loss, and this table says whether it does here. `compare_policies` (CLI:
`interp dlm policies`): one diffusion model's SAEs trained on masked against visible positions, with how far
their decoder directions overlap. All layers of a run train from one activation stream.
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


def _layer_run(cfg: SAETrainConfig, n_layers: int, run_dir: Path, resume: bool) -> dict[int, dict]:
    """{layer: metrics} of a run with one SAE after every block at `run_dir`, trained unless it is finished."""
    from .train import train_sae

    hooks = [f"blocks.{l}.hook_resid_post" for l in range(n_layers)]
    cfg = replace(cfg, hooks=hooks, k=[cfg.k[0]], out=str(run_dir))
    if (run_dir / "metrics.json").exists():
        metrics = json.loads((run_dir / "metrics.json").read_text())
    else:
        metrics = train_sae(cfg, resume=resume and run_dir.with_name(run_dir.name + ".partial").exists()).metrics
    return {l: dict(metrics[sae_name(h, cfg.k[0])], sae=str(run_dir / "saes" / sae_name(h, cfg.k[0])))
            for l, h in enumerate(hooks)}


def _compare(models: tuple[str, ...], base: SAETrainConfig, out: Path, resume: bool) -> dict:
    from interp.loading import load_model

    table = {model: _layer_run(replace(base, model=model), len(load_model(model).bridge.blocks),
                               out / Path(model).name, resume) for model in models}
    (out / "comparison.json").write_text(json.dumps(table, indent=2))
    (out / "comparison.md").write_text(markdown_table(table))
    return table


def decoder_overlap(a, b, live_a=None, live_b=None) -> dict:
    """How far two SAEs share decoder directions: for each (live) latent of one, the largest cosine with any live
    latent of the other; the mean of that over both SAEs' latents, and the share above 0.9 (the same feature,
    found twice). A dead latent's direction is an untrained one, so `live_a` / `live_b` (bool per latent) leave
    them out."""
    import torch

    da = torch.nn.functional.normalize(a.W_dec.detach().float(), dim=-1)
    db = torch.nn.functional.normalize(b.W_dec.detach().float(), dim=-1)
    if live_a is not None:
        da = da[torch.as_tensor(live_a)]
    if live_b is not None:
        db = db[torch.as_tensor(live_b)]
    cos = da @ db.T
    best = torch.cat([cos.max(1).values, cos.max(0).values])
    return {"mean_max_cosine": float(best.mean()), "shared_0.9": float((best > 0.9).float().mean())}


def compare_policies(model: str = "mdlm-mini", policies: tuple[str, ...] = ("mask", "unmask"),
                     base: SAETrainConfig | None = None, out: str | Path = "runs/compare-mask-policies",
                     resume: bool = False) -> dict:
    """A diffusion model's SAEs after every block under each mask policy (one train-sae run per policy under
    `out`, reused when finished), side by side per layer, with the overlap of the first two policies' decoders.
    Returns and writes {"policies": {policy: {layer: metrics}}, "overlap": {layer: ...}}."""
    from interp.errors import InterpError
    from interp.loading import load_model
    from interp.rundir import RunDir

    from .train import load_sae

    base = replace(base or SAETrainConfig(), model=model)
    for policy in policies:
        replace(base, mask_policy=policy).validate()
    if len(policies) < 2 or len(set(policies)) != len(policies):
        raise InterpError(f"give two or more different mask policies to compare (got {', '.join(policies)})")
    loaded = load_model(model)
    if not loaded.is_diffusion:
        raise InterpError(f"{model} is autoregressive; mask policies apply to masked diffusion models")
    run = RunDir(out, "compare-mask-policies", atomic=False)  # holds one train-sae run per policy
    run.check(resume=True, reuse_finished=True)
    with run.writing(resume=True, reuse_finished=True) as out:
        n_layers = len(loaded.bridge.blocks)
        table = {"policies": {p: _layer_run(replace(base, mask_policy=p), n_layers, out / p, resume)
                              for p in policies}}
        first, second = table["policies"][policies[0]], table["policies"][policies[1]]
        table["overlap"] = {l: decoder_overlap(load_sae(Path(first[l]["sae"])), load_sae(Path(second[l]["sae"])),
                                               _live(first[l]["sae"]), _live(second[l]["sae"]))
                            for l in range(n_layers)}
        (out / "policies.json").write_text(json.dumps(table, indent=2))
        (out / "policies.md").write_text(policies_table(table))
    return table


def _live(sae_dir: str) -> list[bool] | None:
    """Which latents fired on the run's feature-statistics tokens (None when it kept no statistics)."""
    from interp.errors import InterpError

    from .feature_store import FeatureStore

    try:
        return FeatureStore(sae_dir).alive
    except InterpError:
        return None


def policies_table(table: dict) -> str:
    """One row per layer: each policy's EV, masked-token ΔCE, visible-token ΔCE and dead share; then the first
    two policies' decoder overlap over their live latents."""
    policies = list(table["policies"])
    layers = sorted(int(l) for l in table["overlap"])
    get = lambda d, l: d.get(l, d.get(str(l)))
    fmt = lambda v, f: "–" if v is None else format(v, f)
    cols = [("explained_variance", "EV", ".3f"), ("delta_ce", "ΔCE", "+.4f"),
            ("delta_ce_unmasked", "ΔCE visible", "+.4f"), ("dead_fraction", "dead", ".3f")]
    head = ["layer"] + [f"{p} {name}" for p in policies for _, name, _ in cols] + \
        [f"{policies[0]}/{policies[1]} mean max cos (live)", "shared (cos > 0.9)"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for l in layers:
        cells = [str(l)] + [fmt(get(table["policies"][p], l).get(key), f) for p in policies for key, _, f in cols]
        o = get(table["overlap"], l)
        cells += [f"{o['mean_max_cosine']:.3f}", f"{100 * o['shared_0.9']:.1f}%"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


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
