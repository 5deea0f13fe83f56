"""`interp dlm ...`: the diffusion-LM analyses, a thin layer over saes/decoding_order.py, stability.py,
steer_eval.py and compare.py."""

from __future__ import annotations

from pathlib import Path

import typer

from interp.console import console
from interp.options import command

from .decoding_order import OrderConfig
from .stability import StabilityConfig
from .steer_eval import SteerEvalConfig

dlm_app = typer.Typer(help="Diffusion-LM analyses through SAEs (DLM-Scope).", no_args_is_help=True)


@dlm_app.command("order")
@command(OrderConfig)
def order_cmd(cfg: OrderConfig,
              resume: bool = typer.Option(False, help="continue a stopped run (and the SAE training it began)"),
              overwrite: bool = typer.Option(False, help="start a stopped run again (only a run interp made)")) -> None:
    """Decoding order: each remasking strategy's latent stability while masked, drift after decoding, accuracy."""
    from .decoding_order import decoding_order, markdown_table

    result = decoding_order(cfg, resume=resume, overwrite=overwrite)
    console.print(markdown_table(result), markup=False, highlight=False)
    console.print(f"Does stability while masked predict accuracy? {result['prediction']['verdict']}",
                  markup=False, highlight=False, soft_wrap=True)
    out = Path(cfg.out)
    console.print(f"written: {out / 'order.json'}, {out / 'order.md'} and {out / 'order.html'}")


@dlm_app.command("policies")
def policies_cmd(model: str = typer.Option("mdlm-mini", help="a diffusion model"),
                 policies: list[str] = typer.Option(["mask", "unmask"], "--policy",
                                                    help="mask policies compared (the first two: decoder overlap)"),
                 tokens: int = typer.Option(1_000_000, help="training activations per SAE"),
                 k: int = typer.Option(32), expansion: int = typer.Option(16),
                 out: Path = typer.Option(Path("runs/compare-mask-policies")),
                 resume: bool = typer.Option(False, help="continue interrupted runs")) -> None:
    """Mask against unmask SAEs after every block: EV, ΔCE, dead latents and decoder overlap per layer."""
    from .compare import compare_policies, policies_table
    from .config import SAETrainConfig

    policies = [p for item in policies for p in item.split(",") if p]
    base = SAETrainConfig(tokens=tokens, k=[k], expansion=expansion)
    table = compare_policies(model, tuple(policies), base, out, resume)
    console.print(policies_table(table), markup=False, highlight=False)
    console.print(f"written to {out / 'policies.md'} and {out / 'policies.json'}")


@dlm_app.command("stability")
@command(StabilityConfig)
def stability_cmd(cfg: StabilityConfig,
                  resume: bool = typer.Option(False, help="continue a stopped run (its SAEs and fine-tuning)")) -> None:
    """The base model's SAE at every fine-tuning checkpoint, a diffusion beside an AR model: EV, ΔCE, L0,
    firing-frequency correlation, top contexts kept."""
    from .stability import markdown_table, stability

    result = stability(cfg, resume=resume)
    console.print(markdown_table(result), markup=False, highlight=False)
    out = Path(cfg.out)
    console.print(f"written: {out / 'stability.json'}, {out / 'stability.md'} and {out / 'stability.html'}")


@dlm_app.command("steer-eval")
@command(SteerEvalConfig)
def steer_eval_cmd(cfg: SteerEvalConfig,
                   resume: bool = typer.Option(False, help="continue a stopped run (its SAE training)")) -> None:
    """Diffusion-time steering against AR steering: concept gained at matched fluency loss, no LLM judge."""
    from .steer_eval import markdown_table, steer_eval

    result = steer_eval(cfg, resume=resume)
    console.print(markdown_table(result), markup=False, highlight=False)
    console.print(result["verdict"], markup=False, highlight=False, soft_wrap=True)
    out = Path(cfg.out)
    console.print(f"written: {out / 'steering.json'}, {out / 'steering.md'} and {out / 'steering.html'}")
