"""Command-line options that every model-loading command shares, defined once so their names and help agree."""

from __future__ import annotations

import typer

DTYPE = typer.Option("float32", "--dtype", help="precision of the model's weights: float32, bfloat16 or float16")
TRUST_REMOTE_CODE = typer.Option(
    False, "--trust-remote-code",
    help="run the model code a checkpoint ships (LLaDA, Dream); only for checkpoints you trust")
DEVICE_MAP = typer.Option(
    None, "--device-map",
    help="'auto': accelerate spreads a model too big for one device over all of them (then --device only "
         "places the rest of the work); needs accelerate")
