"""What every tab of the app is: a title, a `build` that lays out its components and wires their events, and
optionally an `opening`, what it shows as soon as the page loads.

A tab never opens its own `gr.Tab`: `build_app` does, so the registry order is the order on the page.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Callable

import gradio as gr

from interp.errors import InterpError

from .circuits_view import CircuitInspector
from .features import FeatureBrowser
from .html import esc
from .runs import Found, RunsDir


@dataclass
class Context:
    """What the tabs share: one runs directory, the views' workers over it, and what its scan found at start."""
    runs: RunsDir
    browser: FeatureBrowser
    inspector: CircuitInspector
    found: Found


@dataclass
class Opening:
    """A tab's share of the page-load event: `values()` returns one value (or `gr.skip()`) per output."""
    outputs: list = field(default_factory=list)
    values: Callable[[], list] = list


class Tab:
    title: str = ""

    def build(self, ctx: Context) -> None:
        raise NotImplementedError

    def opening(self, ctx: Context) -> Opening | None:
        """Called after `build`, so it can name the components `build` kept."""
        return None


def _error(e: InterpError) -> gr.Error:
    # the popup renders HTML, and the message can quote what the caller sent
    return gr.Error(esc(e), print_exception=False)


def shown(fn):
    """Bad input reaches the page as one error line, not a traceback."""
    if inspect.isgeneratorfunction(fn):  # stays a generator, so gradio streams it and can stop it
        @functools.wraps(fn)
        def stream(*args):
            try:
                yield from fn(*args)
            except InterpError as e:
                raise _error(e) from None
        return stream

    @functools.wraps(fn)
    def run(*args):
        try:
            return fn(*args)
        except InterpError as e:
            raise _error(e) from None
    return run
