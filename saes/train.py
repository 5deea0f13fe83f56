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
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from interp.errors import InterpError
from interp.rundir import config_changes

from .config import SAETrainConfig
from .sources import apply_cache, open_source

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
              overwrite: bool = False) -> SAETrainResult | None:
    """Train one SAE of `cfg.architecture` per (hook, k) from one activation stream, or from the cache
    `cfg.activations` (outputs: module docstring). `resume` continues a stopped run of `cfg.out`; `overwrite`
    replaces a finished one (interp/rundir.py). Under torchrun every rank calls this; rank 0 writes and
    evaluates and gets the result, the others get None."""
    from interp.distributed import Comm
    from interp.interrupt import deferred_interrupt
    from interp.rundir import RunDir

    from .trainer import load_checkpoint, make_states

    cfg.validate()
    comm = Comm.from_env(cfg.device)
    cache = apply_cache(cfg) if cfg.activations else None  # it names the model, which names the run directory
    run_dir = RunDir(cfg.run_dir(), "sae")
    if comm.main:
        resume = run_dir.check(resume, overwrite) == "resume"  # before the model loads: refusals cost nothing
    resume = comm.broadcast(resume)
    source = open_source(cfg, comm, cache)
    with (run_dir.writing(resume, overwrite) if comm.main else nullcontext(run_dir.work)) as work:
        if comm.main:
            if resume:
                _check_same_config(work, cfg)
            (work / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        comm.barrier()  # the other ranks wait for the work directory
        states = make_states(cfg, cfg.hooks, source.d_in, cfg.model, only=source.mine)
        progress = load_checkpoint(work, states) if resume else None
        progress = progress or {"step": 0, "batches_read": 0, "scales": None, "curves": [], "seconds": 0.0}
        with deferred_interrupt() as interrupted:
            train_seconds = _train(cfg, source, states, progress, work, show_progress and comm.main, interrupted)
        if not comm.main:
            return None
        if source.mine is not None:  # hook-parallel: the other ranks' SAEs from the final checkpoint
            states = make_states(cfg, cfg.hooks, source.d_in, cfg.model)
            load_checkpoint(work, states)
        metrics, saes = _finish(cfg, source.model(), states, progress, work, train_seconds)
    tps = cfg.steps() * cfg.batch_size / train_seconds
    return SAETrainResult(run_dir.out, {n: sae for n, (_, sae) in saes.items()}, metrics, train_seconds, tps)


def _train(cfg, source, states, progress: dict, work: Path, show_progress: bool, interrupted) -> float:
    """The optimiser loop from `progress` to the last step; checkpoints every `checkpoint_every` steps and on
    Ctrl-C (then raises KeyboardInterrupt). Returns the training seconds."""
    from .trainer import save_checkpoint, train_step

    comm = source.comm
    steps = cfg.steps()
    start = time.time() - progress["seconds"]
    bar = tqdm(total=steps, initial=progress["step"], desc=f"train-sae {Path(cfg.model).name}",
               disable=not show_progress, unit="step")
    batches = source.batches(progress["batches_read"])
    step_comm = comm if source.mine is None else None  # data-parallel: gradients and counts are summed
    while progress["step"] < steps:
        batch = next(batches).float()  # the model may run in bfloat16; the SAEs train in float32
        if progress["scales"] is None:
            _init_scales(source, states, batch, progress)
        rows = source.rows(batch)
        scales = progress["scales"]
        log = {s.name: train_step(s, rows[:, source.column(s)] * scales[s.hook_index], cfg.dead_tokens, step_comm)
               for s in states}
        progress["step"] += 1
        progress["batches_read"] = source.reader.batches_read
        if progress["step"] % LOG_EVERY == 0 or progress["step"] == steps:
            progress["curves"].append({"step": progress["step"], "tokens": progress["step"] * cfg.batch_size,
                                       **source.gather_logs(log)})
        if states:
            first = log[states[0].name]
            bar.set_postfix(ev=f"{first['explained_variance']:.3f}", l0=f"{first['l0']:.0f}",
                            dead=f"{first['dead_fraction']:.3f}")
        bar.update()
        stop = comm.any(interrupted())
        if stop or (progress["step"] % cfg.checkpoint_every == 0 and progress["step"] < steps):
            progress["seconds"] = time.time() - start
            save_checkpoint(work, states, progress, comm, source.writes)
        if stop:
            bar.close()
            raise KeyboardInterrupt
    bar.close()
    progress["seconds"] = time.time() - start
    save_checkpoint(work, states, progress, comm, source.writes)  # evaluation below can be redone from here
    return progress["seconds"]


def _init_scales(source, states, batch, progress: dict) -> None:
    """sae-lens's expected_average_only_in: each hook scaled to mean norm sqrt(d_in), from the first global
    batch; the decoder bias starts at the data mean (as sparsify does), not at zero. Hook-parallel ranks each
    see their own hooks' columns, so the scales are summed over ranks."""
    d_in = source.d_in
    scales = torch.zeros(len(source.hooks))
    for h in range(len(source.hooks)):
        if source.mine is None or h in source.mine:
            scales[h] = d_in ** 0.5 / batch[:, source.column_of(h)].norm(dim=-1).mean(0).item()
    if source.mine is not None:
        source.comm.sum_(scales)
    progress["scales"] = scales.tolist()
    for s in states:
        s.sae.b_dec.data.copy_(batch[:, source.column(s)].mean(0) * progress["scales"][s.hook_index])


def _finish(cfg, loaded, states, progress: dict, work: Path, train_seconds: float) -> tuple[dict, dict]:
    """Fold the scaling into each SAE, save it, evaluate it, write feature statistics, metrics and curves."""
    from .evaluate import evaluate_saes
    from .feature_store import write_features
    from .features import feature_stats
    from .optimizers import for_evaluation
    from interp.memory import peak_memory

    memory = peak_memory()  # of training (this rank's), before the evaluation adds its own
    saes = {}
    for s in states:
        path = work / "saes" / s.name
        for_evaluation(s.optimizer)
        s.sae.fold_activation_norm_scaling_factor(progress["scales"][s.hook_index])
        s.sae.save_inference_model(path)
        saes[s.name] = (cfg.hooks[s.hook_index], load_sae(path, cfg.device))
    metrics = evaluate_saes(loaded, saes, cfg.dataset, cfg.context_size, cfg.eval_budget(), cfg.seed, cfg.model_batch,
                            cfg.mask_ratio, cfg.mask_policy, cfg.keep_special_positions)
    for s in states:
        hook, sae = saes[s.name]
        metrics[s.name].update(tokens=cfg.steps() * cfg.batch_size, train_seconds=round(train_seconds, 1), **memory,
                               dead_fraction_training=float((s.since_fired >= cfg.dead_tokens).float().mean()))
        stats = feature_stats(loaded, hook, sae, cfg.dataset, cfg.context_size, cfg.feature_budget(), cfg.seed,
                              cfg.model_batch, keep_special_positions=cfg.keep_special_positions)
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


def sae_at(model: str, hook: str, tokens: int, seed: int, out: Path, resume: bool = False,
           show_progress: bool = True):
    """The default-recipe SAE of `model` at `hook` in the run `out`: trained there once (`tokens` activations),
    loaded from there afterwards. The analyses that need an SAE of a base model and were given none use it."""
    from .config import sae_name

    cfg = SAETrainConfig(model=model, hooks=[hook], tokens=tokens, seed=seed, out=str(out))
    if not (Path(out) / "metrics.json").exists():
        train_sae(cfg, resume=resume, show_progress=show_progress)
    return load_sae(Path(out) / "saes" / sae_name(hook, cfg.k[0]))
