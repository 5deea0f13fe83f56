"""The saes package's subcommands: train-sae, eval-sae, compare-sae-layers (a thin layer over the API)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from interp.console import console
from interp.options import command

from .activation_cache import CacheConfig
from .config import SAETrainConfig


def metrics_table(metrics: dict, title: str) -> Table:
    table = Table(title=title)
    cols = ["sae", "d_sae", "k", "EV", "MSE", "L0", "dead", "CE clean", "CE spliced", "ΔCE", "KL"]
    for c in cols:
        table.add_column(c)
    for name, m in metrics.items():
        table.add_row(name, str(m["d_sae"]), str(m["k"]), f"{m['explained_variance']:.3f}", f"{m['mse']:.4g}",
                      f"{m['l0']:.1f}", f"{m['dead_fraction']:.3f}", _num(m["ce_clean"], ".4f"),
                      _num(m["ce_spliced"], ".4f"), _num(m["delta_ce"], "+.4f"), _num(m["kl"], ".4f"))
    return table


def _num(value, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)  # None: not measured (no LM head)


def print_metrics(metrics: dict, title: str) -> None:
    """The table, then one line when CE and KL were skipped (the same reason for every SAE of a model)."""
    console.print(metrics_table(metrics, title))
    skipped = next((m["ce_skipped"] for m in metrics.values() if m.get("ce_skipped")), None)
    if skipped:
        console.print(f"CE, ΔCE and KL skipped: {skipped}; they are null in metrics.json", soft_wrap=True,
                      markup=False, highlight=False)  # one line, whatever the path holds


@command(SAETrainConfig)
def train_sae_cmd(
    cfg: SAETrainConfig,
    resume: bool = typer.Option(False, help="continue an interrupted run from its last checkpoint"),
    overwrite: bool = typer.Option(False, help="replace a finished run at --out (only a run interp made)"),
) -> None:
    """Train Top-K SAEs (sae-lens format) on a hook of an AR or diffusion LM; evaluate; feature statistics."""
    from .train import train_sae

    result = train_sae(cfg, resume=resume, overwrite=overwrite)
    if result is None:  # a torchrun rank other than 0
        return
    print_metrics(result.metrics, f"{cfg.model}: {result.run_dir}")
    source = "from the cache" if cfg.activations else "model forward included"
    console.print(f"{cfg.steps() * cfg.batch_size:,} activations per SAE in {result.seconds:.0f} s "
                  f"({result.tokens_per_second:,.0f} tokens/s, {source}); metrics: {result.run_dir / 'metrics.json'}")


@command(CacheConfig)
def cache_activations_cmd(
    cfg: CacheConfig,
    resume: bool = typer.Option(False, help="continue an interrupted cache at its next shard"),
    overwrite: bool = typer.Option(False, help="replace a finished cache at --out (only a cache interp made)"),
) -> None:
    """Store a model's activations at some hooks once (sharded safetensors) for train-sae --activations."""
    from .activation_cache import cache_activations, read_cache

    out = cache_activations(cfg, resume=resume, overwrite=overwrite)
    cache = read_cache(out)
    console.print(f"{cache['rows']:,} activations of {', '.join(cache['hooks'])} in {len(cache['shards'])} shards: "
                  f"{out}")


def eval_sae_cmd(run: Path = typer.Argument(..., help="a train-sae run directory or one SAE directory"),
                 model: Optional[str] = typer.Option(None, help="evaluate on another model (default: the SAE's)"),
                 tokens: Optional[int] = typer.Option(None, help="evaluation tokens (default: the count the run "
                                                                 "was evaluated on after training)")) -> None:
    """Evaluate SAEs (EV, MSE, L0, dead, CE with the SAE spliced in, KL); rewrites metrics.json."""
    from .run_eval import evaluate_run

    metrics = evaluate_run(run, model, tokens)
    print_metrics(metrics, str(run))


def compare_cmd(models: list[str] = typer.Option(["pythia-mini", "mdlm-mini"], "--model", help="models to compare"),
                tokens: int = typer.Option(2_000_000, help="training activations per SAE"),
                k: int = typer.Option(32), expansion: int = typer.Option(16),
                out: Path = typer.Option(Path("runs/compare-sae-layers")),
                mask_policy: str = typer.Option("mask", help="diffusion models: positions the SAEs train on"),
                resume: bool = typer.Option(False, help="continue interrupted runs")) -> None:
    """SAEs after every block of an AR and a diffusion model: one table of delta CE per layer."""
    from .compare import compare_layers, markdown_table

    base = SAETrainConfig(tokens=tokens, k=[k], expansion=expansion, mask_policy=mask_policy).validate()
    table = compare_layers(tuple(models), base, out, resume)
    console.print(markdown_table(table))
    console.print(f"written to {out / 'comparison.md'} and {out / 'comparison.json'}")


def register(app: typer.Typer) -> None:
    from .dlm_commands import dlm_app

    app.command("cache-activations")(cache_activations_cmd)
    app.command("train-sae")(train_sae_cmd)
    app.command("eval-sae")(eval_sae_cmd)
    app.command("compare-sae-layers")(compare_cmd)
    app.add_typer(dlm_app, name="dlm")
