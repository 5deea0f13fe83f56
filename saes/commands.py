"""The saes package's subcommands: train-sae, eval-sae, compare-sae-layers (a thin layer over the API)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from interp import options
from interp.console import console



def _split(values: list[str]) -> list[str]:
    """Repeated options and comma-separated lists both work: --k 16 --k 32, --k 16,32."""
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _ints(values: list[str], what: str) -> list[int]:
    from interp.errors import InterpError

    try:
        return [int(v) for v in _split(values)]
    except ValueError:
        raise InterpError(f"{what} must be integers (got {', '.join(values)})") from None


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


def train_sae_cmd(
    model: str = typer.Option("pythia-mini", help="zoo name, local HF directory, .gguf file or hub id"),
    dataset: str = typer.Option("corpus", help="'corpus' (generated), a local .txt/.jsonl file, or an HF dataset name"),
    context_size: int = typer.Option(64, help="tokens per sequence"),
    hook: list[str] = typer.Option([], help="TransformerLens hook name(s); default: residual stream after the middle block"),
    k: list[str] = typer.Option(["32"], help="active latents; several values (--k 16 --k 32 or --k 16,32) train a sweep"),
    width: Optional[int] = typer.Option(None, help="number of latents (overrides --expansion)"),
    expansion: int = typer.Option(16, help="latents per input dimension when --width is not given"),
    tokens: int = typer.Option(2_000_000, help="training activations per SAE"),
    batch_size: int = typer.Option(4096, help="activations per optimiser step"),
    lr: float = typer.Option(1e-3, help="Adam learning rate"),
    seed: int = typer.Option(0),
    device: str = typer.Option("cpu"),
    dtype: str = options.DTYPE,
    device_map: Optional[str] = options.DEVICE_MAP,
    trust_remote_code: bool = options.TRUST_REMOTE_CODE,
    out: Optional[Path] = typer.Option(None, help="run directory (default runs/sae/<model>)"),
    resume: bool = typer.Option(False, help="continue an interrupted run from its last checkpoint"),
    overwrite: bool = typer.Option(False, help="replace a finished run at --out (only a run interp made)"),
    mask_policy: str = typer.Option("mask", help="diffusion models: positions kept: mask, unmask, all or clean"),
    mask_ratio: tuple[float, float] = typer.Option((0.05, 0.5), help="diffusion models: mask ratio range MIN MAX"),
    eval_tokens: Optional[int] = typer.Option(
        None, help="held-out tokens for the evaluation and feature statistics (default: 1/16 of --tokens, "
                   "at least 4,096 and at most 65,536)"),
) -> None:
    """Train Top-K SAEs (sae-lens format) on a hook of an AR or diffusion LM; evaluate; feature statistics."""
    from .config import SAETrainConfig
    from .train import train_sae

    cfg = SAETrainConfig(model=model, dataset=dataset, context_size=context_size, hooks=_split(hook),
                         k=_ints(k, "--k"), width=width, expansion=expansion, tokens=tokens, batch_size=batch_size,
                         lr=lr, seed=seed, device=device, dtype=dtype, device_map=device_map,
                         trust_remote_code=trust_remote_code,
                         out=str(out) if out else None, mask_policy=mask_policy,
                         mask_ratio=tuple(mask_ratio), eval_tokens=eval_tokens)
    result = train_sae(cfg, resume=resume, overwrite=overwrite)
    print_metrics(result.metrics, f"{model}: {result.run_dir}")
    console.print(f"{cfg.steps() * cfg.batch_size:,} activations per SAE in {result.seconds:.0f} s "
                  f"({result.tokens_per_second:,.0f} tokens/s, model forward included); metrics: {result.run_dir / 'metrics.json'}")


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
    from .config import SAETrainConfig

    base = SAETrainConfig(tokens=tokens, k=[k], expansion=expansion, mask_policy=mask_policy).validate()
    table = compare_layers(tuple(models), base, out, resume)
    console.print(markdown_table(table))
    console.print(f"written to {out / 'comparison.md'} and {out / 'comparison.json'}")


def register(app: typer.Typer) -> None:
    app.command("train-sae")(train_sae_cmd)
    app.command("eval-sae")(eval_sae_cmd)
    app.command("compare-sae-layers")(compare_cmd)
