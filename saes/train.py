"""`train_sae(config)`: harvest activations, train SAEs on them, evaluate, write the run directory.

Run directory (written under `<out>.partial`, renamed to `<out>` when complete; interp/rundir.py):
    interp-run.json             the manifest that marks the directory as a run of ours
    config.json                 the full SAETrainConfig
    saes/<hook>-k<k>/           one sae-lens SAE each (cfg.json + sae_weights.safetensors, decoder norms
                                and activation scaling folded in) plus features.json(l) (saes/feature_store.py)
    metrics.json                {sae name: metrics}, see saes/evaluate.py
    curves.json                 training curves: per logged step, each SAE's mse, aux, EV, L0, dead, lr
`<out>.partial/checkpoint/` holds the last checkpoint (written on Ctrl-C too); `resume=True` continues from it.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from interp.errors import InterpError
from interp.rundir import config_changes

from .config import SAETrainConfig, default_hook

LOG_EVERY = 10


@dataclass
class SAETrainResult:
    run_dir: Path
    saes: dict  # name -> sae_lens SAE (inference form, as saved)
    metrics: dict  # name -> metrics dict
    seconds: float
    tokens_per_second: float  # training activations per second, per SAE (model forward included)


def _check_same_config(work: Path, cfg: SAETrainConfig) -> None:
    if not (work / "config.json").exists():
        return
    saved = json.loads((work / "config.json").read_text())
    for key in ("eval_tokens", "feature_tokens"):  # left at the default: keep the count the run started with
        if getattr(cfg, key) is None and key in saved:
            setattr(cfg, key, saved[key])
    if diff := config_changes(saved, cfg.to_dict(), SAETrainConfig().to_dict()):
        raise InterpError(f"cannot resume {work}: its config differs in {', '.join(diff)}")


def train_sae(cfg: SAETrainConfig, resume: bool = False, show_progress: bool = True,
              overwrite: bool = False) -> SAETrainResult:
    """Train one SAE of `cfg.architecture` per (hook, k) from one activation stream (outputs: module docstring).
    `resume` continues a stopped run of `cfg.out`; `overwrite` replaces a finished one (interp/rundir.py)."""
    from interp.activations import ActivationStream, StreamConfig
    from interp.interrupt import deferred_interrupt
    from interp.loading import load_model
    from interp.rundir import RunDir

    from .trainer import load_checkpoint, make_states

    cfg.validate()
    run_dir = RunDir(cfg.run_dir(), "sae")
    resume = run_dir.check(resume, overwrite) == "resume"  # before the model loads: refusals cost nothing
    loaded = load_model(cfg.model, device=cfg.device, dtype=cfg.dtype, device_map=cfg.device_map,
                        trust_remote_code=cfg.trust_remote_code)
    if not cfg.hooks:
        cfg.hooks = [default_hook(len(loaded.bridge.blocks))]
    scfg = StreamConfig(hooks=cfg.hooks, dataset=cfg.dataset, context_size=cfg.context_size,
                        model_batch=cfg.model_batch, batch_size=cfg.batch_size, buffer_batches=cfg.buffer_batches,
                        seed=cfg.seed, diffusion=loaded.is_diffusion, mask_policy=cfg.mask_policy,
                        mask_ratio=cfg.mask_ratio)
    probe = ActivationStream(loaded.bridge, loaded.tokenizer, scfg)  # checks hooks and dataset before writing
    cfg.hooks = scfg.hooks = probe.hooks  # duplicates dropped
    d_in = probe.model_batch(next(probe.tokens)[:1])[0].shape[-1]
    if max(cfg.k) > cfg.d_sae(d_in):
        raise InterpError(f"k = {max(cfg.k)} is larger than the width {cfg.d_sae(d_in)}; k must be at most the width")

    with run_dir.writing(resume, overwrite) as work:
        if resume:
            _check_same_config(work, cfg)
        (work / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        states = make_states(cfg, cfg.hooks, d_in, cfg.model)
        progress = load_checkpoint(work, states) if resume else None
        progress = progress or {"step": 0, "batches_read": 0, "scales": None, "curves": [], "seconds": 0.0}
        with deferred_interrupt() as interrupted:
            train_seconds = _train(cfg, loaded, scfg, states, progress, work, d_in, show_progress, interrupted)
        metrics, saes = _finish(cfg, loaded, states, progress, work, train_seconds)
    tps = cfg.steps() * cfg.batch_size / train_seconds
    return SAETrainResult(run_dir.out, {n: sae for n, (_, sae) in saes.items()}, metrics, train_seconds, tps)


def _train(cfg, loaded, scfg, states, progress: dict, work: Path, d_in: int, show_progress: bool,
           interrupted) -> float:
    """The optimiser loop from `progress` to the last step; checkpoints every `checkpoint_every` steps and on
    Ctrl-C (then raises KeyboardInterrupt). Returns the training seconds."""
    from interp.activations import ActivationStream

    from .trainer import save_checkpoint, train_step

    stream = ActivationStream(loaded.bridge, loaded.tokenizer, scfg, start_batch=progress["batches_read"])
    steps = cfg.steps()
    start = time.time() - progress["seconds"]
    bar = tqdm(total=steps, initial=progress["step"], desc=f"train-sae {loaded.name}", disable=not show_progress,
               unit="step")
    batches = iter(stream)
    while progress["step"] < steps:
        batch = next(batches)
        if progress["scales"] is None:  # sae-lens's expected_average_only_in: mean norm sqrt(d_in)
            progress["scales"] = (d_in ** 0.5 / batch.norm(dim=-1).mean(0)).tolist()
            for s in states:  # start the decoder bias at the data mean (as sparsify does), not at zero
                s.sae.b_dec.data.copy_(batch[:, s.hook_index].mean(0) * progress["scales"][s.hook_index])
        scales = torch.tensor(progress["scales"], device=batch.device)
        log = {s.name: train_step(s, batch[:, s.hook_index] * scales[s.hook_index], cfg.dead_tokens) for s in states}
        progress["step"] += 1
        progress["batches_read"] = stream.batches_read
        if progress["step"] % LOG_EVERY == 0 or progress["step"] == steps:
            progress["curves"].append({"step": progress["step"], "tokens": progress["step"] * cfg.batch_size, **log})
        first = log[states[0].name]
        bar.set_postfix(ev=f"{first['explained_variance']:.3f}", l0=f"{first['l0']:.0f}",
                        dead=f"{first['dead_fraction']:.3f}")
        bar.update()
        stop = interrupted()
        if stop or (progress["step"] % cfg.checkpoint_every == 0 and progress["step"] < steps):
            progress["seconds"] = time.time() - start
            save_checkpoint(work, states, progress)
        if stop:
            bar.close()
            raise KeyboardInterrupt
    bar.close()
    progress["seconds"] = time.time() - start
    save_checkpoint(work, states, progress)  # evaluation below can be redone from here
    return progress["seconds"]


def _finish(cfg, loaded, states, progress: dict, work: Path, train_seconds: float) -> tuple[dict, dict]:
    """Fold the scaling into each SAE, save it, evaluate it, write feature statistics, metrics and curves."""
    from .evaluate import evaluate_saes
    from .feature_store import write_features
    from .features import feature_stats

    saes = {}
    for s in states:
        path = work / "saes" / s.name
        s.sae.fold_activation_norm_scaling_factor(progress["scales"][s.hook_index])
        s.sae.save_inference_model(path)
        saes[s.name] = (cfg.hooks[s.hook_index], load_sae(path, cfg.device))
    metrics = evaluate_saes(loaded, saes, cfg.dataset, cfg.context_size, cfg.eval_budget(), cfg.seed, cfg.model_batch,
                            cfg.mask_ratio, cfg.mask_policy)
    for s in states:
        hook, sae = saes[s.name]
        metrics[s.name].update(tokens=cfg.steps() * cfg.batch_size, train_seconds=round(train_seconds, 1),
                               dead_fraction_training=float((s.since_fired >= cfg.dead_tokens).float().mean()))
        stats = feature_stats(loaded, hook, sae, cfg.dataset, cfg.context_size, cfg.feature_budget(), cfg.seed,
                              cfg.model_batch)
        write_features(stats, work / "saes" / s.name)
    (work / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (work / "curves.json").write_text(json.dumps(progress["curves"]))
    shutil.rmtree(work / "checkpoint")
    return metrics, saes


def load_sae(path: Path, device: str = "cpu"):
    """A sae-lens SAE from its directory, on `device`, with one clear error for a missing or corrupt one."""
    from sae_lens import SAE

    path = Path(path)
    if not (path / "cfg.json").exists():
        raise InterpError(f"{path} is not a sae-lens SAE directory (no cfg.json)")
    try:
        return SAE.load_from_disk(str(path), device=device)
    except Exception as e:  # safetensors / json / shape errors all mean the same thing to the user
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise InterpError(f"cannot load the SAE at {path}: {first}") from None
