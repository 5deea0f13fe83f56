"""`interp circuit-lora` (and its `experiment` and `compositional` subcommands): a thin layer over
`circuits.circuit_lora`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from interp import options
from interp.console import console

lora_app = typer.Typer(help="CircuitLoRA: LoRA ranks allocated per layer from circuit edge changes.",
                       invoke_without_command=True)


@lora_app.callback()
def circuit_lora_cmd(
    ctx: typer.Context,
    model: str = typer.Option("pythia-mini"),
    task: str = typer.Option("add_sub"),
    r_other: int = typer.Option(4, help="rank of modules outside critical layers"),
    r_critical: int = typer.Option(16, help="rank of every linear module of a critical layer"),
    critical_layers: str = typer.Option("topk:1", help="topk:N, mean+std, or layers:I,J (by hand, a control)"),
    count_by: str = typer.Option("source", help="count each edge's change toward its source or target layer"),
    match_params: bool = typer.Option(False, help="size the ranks to uniform LoRA's parameters (within 1%)"),
    uniform_r: Optional[int] = typer.Option(None, help="uniform LoRA's rank (default 2 x r-other)"),
    probe_steps: int = typer.Option(100, help="steps of the plain-LoRA probe run that gives C_after"),
    epochs: float = typer.Option(5.0, help="training epochs over the task's train examples (batch 64)"),
    lr: Optional[float] = typer.Option(None, help="learning rate (default 4e-3 LoRA, 5e-4 full)"),
    lr_critical: Optional[float] = typer.Option(None, help="a learning rate for the critical layers' adapters"),
    n_circuit: int = typer.Option(200, help="attribution prompts per circuit"),
    seed: int = typer.Option(0),
    out: Optional[Path] = typer.Option(None, help="default runs/circuit-lora/<model>-<task>-s<seed>"),
    resume: bool = typer.Option(True, help="reuse finished circuits and runs, continue interrupted ones"),
    overwrite: bool = typer.Option(False, help="start again over a circuit-lora run interp made at --out"),
    dtype: str = options.DTYPE,
    device_map: Optional[str] = options.DEVICE_MAP,
) -> None:
    """Allocate ranks from circuit changes, train LoRA, AdaLoRA, CircuitLoRA and full fine-tuning; one table."""
    if ctx.invoked_subcommand is not None:
        return
    from .circuit_lora import circuit_lora

    out = out or Path("runs/circuit-lora") / f"{Path(model).name}-{task}-s{seed}"
    result = circuit_lora(_config(ctx.params, task=task, out=str(out)), resume=resume, overwrite=overwrite)
    a = result.allocation
    table = Table(title=f"allocation: edge change per layer (by {a.count_by}), rule {a.rule}")
    for col in ("layer", "edge change", "critical", "rank"):
        table.add_column(col)
    for r in a.table():
        table.add_row(str(r["layer"]), f"{r['edge_change']:.4g}", "yes" if r["critical"] else "",
                      str(r["rank"] if r["rank"] is not None else "–"))
    console.print(table)
    table = Table(title=f"{model} · {task}: test accuracy after {result.rows[0]['steps']} steps")
    for col in ("method", "ranks", "trainable parameters", "share of model", "test accuracy"):
        table.add_column(col)
    for r in result.rows:
        table.add_row(r["method"], str(r["ranks"]), f"{r['trainable']:,}", f"{100 * r['share']:.2f}%",
                      f"{100 * r['accuracy']:.1f}")
    console.print(table)
    console.print(f"written: {result.out / 'results.json'}, {result.out / 'allocation.json'}")


def _config(params: dict, **overrides):
    """A CircuitLoRAConfig from the options of `interp circuit-lora` (subcommands read their parent's:
    `interp circuit-lora --r-other 8 experiment`)."""
    from .circuit_lora import CircuitLoRAConfig

    keys = ("model", "r_other", "r_critical", "critical_layers", "count_by", "match_params", "uniform_r",
            "probe_steps", "epochs", "lr", "lr_critical", "n_circuit", "seed", "dtype", "device_map")
    return CircuitLoRAConfig(**{k: params[k] for k in keys}, **overrides)


@lora_app.command("experiment")
def circuit_lora_experiment_cmd(
    ctx: typer.Context,
    tasks: str = typer.Option("all", help="comma-separated tasks, or all"),
    seeds: int = typer.Option(3, help="seeds 0..N-1 per task"),
    out: Path = typer.Option(Path("runs/circuit-lora-experiment")),
) -> None:
    """Every task x method x seed with the options given before `experiment`; a mean +- std table."""
    from dataclasses import replace

    from interp.tasks import ARITHMETIC

    from .circuit_lora import experiment

    names = list(ARITHMETIC) if tasks == "all" else [t.strip() for t in tasks.split(",") if t.strip()]
    base = _config(ctx.parent.params)
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

    result = compositional(_config(ctx.parent.params), out)
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
