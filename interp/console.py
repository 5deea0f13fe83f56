"""The one rich console every command prints through (wide enough for tables when output is not a terminal)."""

import sys

from rich.console import Console

console = Console(width=None if sys.stdout.isatty() else 160)
