"""`interp unlearn` (and `interp unlearn experiment`, `interp unlearn frontier`): a thin layer over
`saes.unlearning`, its options generated from `UnlearnConfig` (a method's own options, `cfg.sspu.target`,
keep their plain names: `--target`)."""

from __future__ import annotations

from pathlib import Path

import typer

from interp.console import console
from interp.options import command

from .config import UnlearnConfig

unlearn_app = typer.Typer(help="Unlearning by SAE subspace projection (SSPU) against RMU, clamping and gradient ascent.",
                          invoke_without_command=True)


@unlearn_app.callback()
@command(UnlearnConfig)
def unlearn_cmd(
    cfg: UnlearnConfig,
    ctx: typer.Context,
    overwrite: bool = typer.Option(False, help="start again over an unlearn run interp made at --out"),
) -> None:
    """Select features, build subspaces, unlearn; evaluate every method clean and under attack; one table."""
    ctx.obj = cfg  # the subcommands' base config: `interp unlearn --steps 300 experiment`
    if ctx.invoked_subcommand is not None:
        return
    from .run import table, unlearn

    report = unlearn(cfg, overwrite=overwrite)
    print(table(report))  # plain Markdown, never wrapped
    console.print(f"written: {cfg.out} (model/, selection.json, bases.safetensors, report.json, report.md)")


@unlearn_app.command("experiment")
def unlearn_experiment_cmd(ctx: typer.Context, seeds: int = typer.Option(3),
                           out: Path = typer.Option(Path("runs/unlearn/experiment"))) -> None:
    """Seeds 0..N-1 with the options given before `experiment`; mean +- std per method and metric."""
    from .run import experiment

    result = experiment(ctx.obj, seeds, out)
    print(result["markdown"])
    console.print(f"written: {out / 'experiment.json'} and {out / 'experiment.md'}")


@unlearn_app.command("frontier")
def unlearn_frontier_cmd(ctx: typer.Context,
                         retain_weights: str = typer.Option("120", help="comma-separated retain weights"),
                         rmu_weights: str = typer.Option("160,320", help="more weights, RMU alone, to extend its "
                                                                         "curve past SSPU's retain accuracy"),
                         seeds: int = typer.Option(5), out: Path = typer.Option(Path("runs/unlearn/frontier"))) -> None:
    """SSPU and RMU at each retain weight (seeds 0..N-1, the options given before `frontier`); SSPU - RMU with
    RMU interpolated at SSPU's retain accuracy, under every attack."""
    from interp.errors import InterpError

    from .frontier import frontier

    def numbers(text: str, option: str) -> list[float]:
        try:
            return [float(w) for w in text.split(",") if w.strip()]
        except ValueError:
            raise InterpError(f"{option} takes comma-separated numbers, got {text!r}") from None

    result = frontier(ctx.obj, numbers(retain_weights, "--retain-weights"), seeds, out,
                      rmu_weights=tuple(numbers(rmu_weights, "--rmu-weights")))
    print(result["markdown"])
    console.print(f"written: {out / 'frontier.json'} and {out / 'frontier.md'}")


def register(app: typer.Typer) -> None:
    app.add_typer(unlearn_app, name="unlearn")
