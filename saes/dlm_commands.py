"""`interp dlm ...`: the diffusion-LM analyses (a thin layer over saes/decoding_order.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from interp.console import console
from interp.options import command

from .decoding_order import OrderConfig

dlm_app = typer.Typer(help="Diffusion-LM analyses through SAEs (DLM-Scope).", no_args_is_help=True)


@dlm_app.command("order")
@command(OrderConfig)
def order_cmd(cfg: OrderConfig) -> None:
    """Decoding order: each remasking strategy's latent stability while masked, drift after decoding, accuracy."""
    from .decoding_order import decoding_order, markdown_table

    result = decoding_order(cfg)
    console.print(markdown_table(result), markup=False, highlight=False)
    console.print(f"Does stability while masked predict accuracy? {result['prediction']['verdict']}",
                  markup=False, highlight=False, soft_wrap=True)
    out = Path(cfg.out)
    console.print(f"written: {out / 'order.json'}, {out / 'order.md'} and {out / 'order.html'}")
