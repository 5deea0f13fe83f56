"""`interp unlearn` (and `interp unlearn experiment`, `interp unlearn frontier`): a thin layer over
`saes.unlearning`. Options a single method owns (`cfg.sspu.target`) keep their plain names here (`--target`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from interp.console import console

unlearn_app = typer.Typer(help="Unlearning by SAE subspace projection (SSPU) against RMU, clamping and gradient ascent.",
                          invoke_without_command=True)


@unlearn_app.callback()
def unlearn_cmd(
    ctx: typer.Context,
    model: Optional[str] = typer.Option(None, help="default: pythia-mini fine-tuned on every task family (cached)"),
    forget: str = typer.Option("mul_div", help="the task family to forget"),
    retain: str = typer.Option("add_sub,sequence,lcm,function", help="comma-separated task families to keep"),
    sae: Optional[Path] = typer.Option(None, help="SAE run with resid_post SAEs of the model (default: train one)"),
    layer: Optional[int] = typer.Option(None, help="default: chosen from the data"),
    features: int = typer.Option(48, help="forget (and irrelevant) features"),
    irrelevant: str = typer.Option("score", help="irrelevant latents: score (smallest |score|) or quiet (least "
                                                 "active on forget and retain)"),
    steering_coef: float = typer.Option(1.0, help="c = coef x mean activation norm at the layer"),
    control_draws: int = typer.Option(8, help="random control vectors u drawn; keeps the one whose half-way push "
                                              "leaves the least of the forget answers (SSPU and RMU alike)"),
    retain_weight: float = typer.Option(120.0),
    reg_weight: float = typer.Option(10.0, help="weight of the update's component outside the relevant subspace"),
    target: str = typer.Option("control", help="SSPU's forget push: control (toward c x u), erase (the "
                                               "relevant-subspace component toward 0) or control+erase"),
    params: str = typer.Option("mlp_out", help="module suffixes trained in layers l-2..l (mlp_out: the MLP output projection)"),
    push_at: str = typer.Option("distinct", help="forget positions pushed: distinct (prefix in no retain prompt) "
                                                  "or all"),
    push_weight: str = typer.Option("known", help="forget prompts' push (SSPU and RMU): known (each prompt's by "
                                                  "the model's current p(answer) + 0.1) or uniform"),
    forget_text: str = typer.Option("prompts+words", help="forget data: prompts+words (the task's prompts and "
                                                          "'a times b is', 'the quotient of p and b is'; mul_div) "
                                                          "or prompts"),
    steps: int = typer.Option(2400),
    lr: float = typer.Option(2e-3),
    n_eval: int = typer.Option(1000, help="test prompts per task for every metric, at most (default: every "
                                           "task's whole test split)"),
    relearn_lrs: str = typer.Option("1e-5,3e-5,1e-4,3e-4,1e-3", help="the relearning attacker's learning rates; "
                                                                     "the best is reported"),
    relearn_draws: int = typer.Option(1, help="independent draws of the 10 relearning examples, averaged"),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("runs/unlearn/run"), help="the run directory"),
    overwrite: bool = typer.Option(False, help="start again over an unlearn run interp made at --out"),
) -> None:
    """Select features, build subspaces, unlearn; evaluate every method clean and under attack; one table."""
    if ctx.invoked_subcommand is not None:
        return
    from .run import table, unlearn

    report = unlearn(_config(ctx.params), overwrite=overwrite)
    print(table(report))  # plain Markdown, never wrapped
    console.print(f"written: {out} (model/, selection.json, bases.safetensors, report.json, report.md)")


def _config(params: dict):
    from .config import from_options

    keys = ("model", "forget", "retain", "layer", "features", "irrelevant", "steering_coef", "control_draws",
            "retain_weight", "reg_weight", "target", "params", "push_at", "push_weight", "forget_text", "steps", "lr",
            "n_eval", "relearn_lrs", "relearn_draws", "seed")
    cfg = {k: params[k] for k in keys} | {"sae": str(params["sae"]) if params["sae"] else None,
                                          "out": str(params["out"])}
    return from_options(**cfg)


@unlearn_app.command("experiment")
def unlearn_experiment_cmd(ctx: typer.Context, seeds: int = typer.Option(3),
                           out: Path = typer.Option(Path("runs/unlearn/experiment"))) -> None:
    """Seeds 0..N-1 with the options given before `experiment`; mean +- std per method and metric."""
    from .run import experiment

    result = experiment(_config(ctx.parent.params), seeds, out)
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

    result = frontier(_config(ctx.parent.params), numbers(retain_weights, "--retain-weights"), seeds, out,
                      rmu_weights=tuple(numbers(rmu_weights, "--rmu-weights")))
    print(result["markdown"])
    console.print(f"written: {out / 'frontier.json'} and {out / 'frontier.md'}")


def register(app: typer.Typer) -> None:
    app.add_typer(unlearn_app, name="unlearn")
