"""The `interp` command. Subcommands come from the `interp.commands` entry-point group: each installed
package registers its own (`register(app)`), so `interp` imports none of the others."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from .errors import InterpError

app = typer.Typer(help="interp: a mechanistic-interpretability workbench.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)


def register_all() -> None:
    for ep in sorted(entry_points(group="interp.commands"), key=lambda e: e.name):
        ep.load()(app)


INTERRUPTED = "interrupted; the last checkpoint is kept: rerun the same command with --resume to continue"


def main() -> None:
    register_all()
    try:
        code = app(standalone_mode=False)  # typer returns 130 for Ctrl-C and the code of a typer.Exit here
    except InterpError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except Exception as e:  # click usage errors carry their own exit code
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
    if code == 130:
        print(INTERRUPTED, file=sys.stderr)
    if isinstance(code, int) and code:
        sys.exit(code)

if __name__ == "__main__":
    main()
