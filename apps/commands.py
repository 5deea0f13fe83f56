"""`interp app`: serve the workbench app over a runs directory."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def app_cmd(runs_dir: Path = typer.Argument(Path("runs"), help="where SAE runs, circuits and allocations are found"),
            host: str = typer.Option("127.0.0.1", help="interface to bind; localhost unless told otherwise"),
            port: Optional[int] = typer.Option(None, help="default: 7860, or the next free port"),
            share: bool = typer.Option(False, help="also open a public gradio.live link")) -> None:
    """Feature browser and circuit/edge inspector for every run under RUNS_DIR (models load only when needed)."""
    from .app import launch

    launch(runs_dir, host, port, share)


def register(root: typer.Typer) -> None:
    root.command("app")(app_cmd)
