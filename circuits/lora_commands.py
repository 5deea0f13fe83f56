"""`interp circuit-lora` (and its `experiment` and `compositional` subcommands): a thin layer over
`circuits.circuit_lora`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from interp.console import console
from interp.options import command

from .circuit_lora import CircuitLoRAConfig

lora_app = typer.Typer(help="CircuitLoRA: LoRA ranks allocated per layer from circuit edge changes.",
                       invoke_without_command=True)


@lora_app.callback()
@command(CircuitLoRAConfig)
def circuit_lora_cmd(
    cfg: CircuitLoRAConfig,
    ctx: typer.Context,
    out: Optional[Path] = typer.Option(None, help="default runs/circuit-lora/<model>-<task>-s<seed>"),
    resume: bool = typer.Option(True, help="reuse finished circuits and runs, continue interrupted ones"),
    overwrite: bool = typer.Option(False, help="start again over a circuit-lora run interp made at --out"),
) -> None:
    """Allocate ranks from circuit changes, train LoRA, AdaLoRA, CircuitLoRA and full fine-tuning; one table."""
    ctx.obj = cfg  # the subcommands' base config: `interp circuit-lora --r-other 8 experiment`
    if ctx.invoked_subcommand is not None:
        return
    from .circuit_lora import circuit_lora

    out = out or Path("runs/circuit-lora") / f"{Path(cfg.model).name}-{cfg.task}-s{cfg.seed}"
    result = circuit_lora(replace(cfg, out=str(out)), resume=resume, overwrite=overwrite)
    a = result.allocation
    table = Table(title=f"allocation: edge change per layer (by {a.count_by}), rule {a.rule}")
    for col in ("layer", "edge change", "critical", "rank"):
        table.add_column(col)
    for r in a.table():
        table.add_row(str(r["layer"]), f"{r['edge_change']:.4g}", "yes" if r["critical"] else "",
                      str(r["rank"] if r["rank"] is not None else "–"))
    console.print(table)
    table = Table(title=f"{cfg.model} · {cfg.task}: test accuracy after {result.rows[0]['steps']} steps")
    for col in ("method", "ranks", "trainable parameters", "share of model", "test accuracy"):
        table.add_column(col)
    for r in result.rows:
        table.add_row(r["method"], str(r["ranks"]), f"{r['trainable']:,}", f"{100 * r['share']:.2f}%",
                      f"{100 * r['accuracy']:.1f}")
    console.print(table)
    console.print(f"written: {result.out / 'results.json'}, {result.out / 'allocation.json'}")


@lora_app.command("experiment")
def circuit_lora_experiment_cmd(
    ctx: typer.Context,
    tasks: str = typer.Option("all", help="comma-separated tasks, or all"),
    seeds: int = typer.Option(3, help="seeds 0..N-1 per task"),
    out: Path = typer.Option(Path("runs/circuit-lora-experiment")),
) -> None:
    """Every task x method x seed with the options given before `experiment`; a mean +- std table."""
    from interp.tasks import ARITHMETIC

    from .circuit_lora import experiment

    names = list(ARITHMETIC) if tasks == "all" else [t.strip() for t in tasks.split(",") if t.strip()]
    base = ctx.obj
    for t in names:
        replace(base, task=t).validate()
    result = experiment(base, names, seeds, out)
    console.print(result["markdown"])
    console.print(f"written: {out / 'experiment.json'} and {out / 'experiment.md'}")


@lora_app.command("compositional")
def circuit_lora_compositional_cmd(ctx: typer.Context,
                                   out: Path = typer.Option(Path("runs/circuit-lora-compositional"))) -> None:
    """CircuitLoRA on the compositional task: critical layers from the add_sub + mul_div circuit union vs from
    the direct circuit vs uniform LoRA (options as given before `compositional`)."""
    from .circuit_lora import compositional

    result = compositional(ctx.obj, out)
    table = Table(title="compositional: test accuracy")
    for col in ("method", "ranks", "trainable parameters", "test accuracy"):
        table.add_column(col)
    for r in result["rows"]:
        table.add_row(r["method"], r["ranks"], f"{r['trainable']:,}", f"{100 * r['accuracy']:.1f}")
    console.print(table)
    for when, o in result["union_vs_direct"].items():
        console.print(f"union vs direct circuit ({when} the probe): edge Jaccard {o['edge_jaccard']:.2f}, "
                      f"node Jaccard {o['node_jaccard']:.2f}")
    console.print(f"written: {out / 'compositional.json'}")
