"""`evaluate_run(path)`: re-evaluate the SAEs of a run directory (or one SAE directory) and rewrite its
`metrics.json` (CLI: `interp eval-sae RUN`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from interp.errors import InterpError
from interp.rundir import write_atomic

from .architectures import trained_k
from .config import SAETrainConfig


def sae_dirs(path: Path) -> dict[str, Path]:
    """{name: directory} of the SAEs in a run directory, or of the single SAE directory `path`."""
    path = Path(path)
    if not path.exists():
        raise InterpError(f"{path} does not exist")
    if (path / "cfg.json").exists():
        return {path.name: path}
    found = {p.name: p for p in sorted((path / "saes").glob("*")) if p.is_dir()}
    if not found:
        raise InterpError(f"{path} is neither an SAE directory (cfg.json) nor a run directory (saes/*/cfg.json)")
    return found


def check_labels(name: str, sae, run_hooks: list[str]) -> None:
    """Refuse an SAE whose cfg.json disagrees with its directory name `<hook>-k<k>` or with the run's hooks:
    it would be evaluated at one hook and its metrics filed under another."""
    hook = sae.cfg.metadata.hook_name
    named = re.fullmatch(r"(.+)-k(\d+)", name)
    if named and named.group(1) != hook:
        raise InterpError(f"SAE {name}: cfg.json says hook_name {hook!r} but the directory name says "
                          f"{named.group(1)!r}; they must match (restore cfg.json or rename the directory)")
    k = trained_k(sae)
    if named and k is not None and int(named.group(2)) != k:
        raise InterpError(f"SAE {name}: cfg.json says k {k} but the directory name says {named.group(2)}; "
                          "they must match")
    if run_hooks and hook not in run_hooks:
        raise InterpError(f"SAE {name}: cfg.json says hook_name {hook!r} but the run's config.json trained "
                          f"{', '.join(run_hooks)}; they must match")


def evaluate_run(path: str | Path, model: str | None = None, n_tokens: int | None = None) -> dict[str, dict]:
    """Metrics for every SAE under `path`, on the model it was trained on (or `model`)."""
    from interp.loading import load_model

    from .evaluate import evaluate_saes
    from .train import load_sae

    if n_tokens is not None and n_tokens < 1:  # 0 fell back to the default, -5 ran one batch: both rewrote metrics
        raise InterpError(f"--tokens must be at least 1 (got {n_tokens})")
    path = Path(path)
    saes = {name: load_sae(d) for name, d in sae_dirs(path).items()}
    run_cfg = path / "config.json"
    cfg = SAETrainConfig.from_dict(json.loads(run_cfg.read_text())) if run_cfg.exists() else SAETrainConfig()
    for name, sae in saes.items():
        check_labels(name, sae, cfg.hooks if run_cfg.exists() else [])
    first = next(iter(saes.values()))
    model = model or first.cfg.metadata.model_name or cfg.model
    loaded = load_model(model, dtype=cfg.dtype, device_map=cfg.device_map,  # as the run trained
                        trust_remote_code=cfg.trust_remote_code)
    hooked = {}
    for name, sae in saes.items():
        hook = sae.cfg.metadata.hook_name
        if hook not in loaded.bridge.hook_dict:
            raise InterpError(f"SAE {name} reads hook {hook!r}, which {model} does not have")
        hooked[name] = (hook, sae)
    # default: the count training evaluated on (config.json records it), so the numbers are reproduced
    metrics = evaluate_saes(loaded, hooked, cfg.dataset, cfg.context_size, n_tokens or cfg.eval_budget(), cfg.seed,
                            cfg.model_batch, cfg.mask_ratio, cfg.mask_policy, cfg.keep_special_positions)
    out = path / "metrics.json"
    if out.exists():  # keep what only training knows (tokens, time, dead latents during training)
        old = json.loads(out.read_text())
        for name, m in metrics.items():
            metrics[name] = {**old.get(name, {}), **m}
            if "ce_skipped" not in m:  # CE measured now: an old run's reason for skipping it no longer holds
                metrics[name].pop("ce_skipped", None)
    write_atomic(out, json.dumps(metrics, indent=2))
    return metrics
