"""The Gradio app: a feature browser and a circuit/edge inspector over one runs directory.

    from apps.app import build_app
    build_app("runs").launch()          # or: interp app runs/

Every event has an api_name, so gradio_client (and notebooks) can call each view directly. Each tab lives in
its own module under apps/tabs/, listed in `apps.tabs.TABS`.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from .circuits_view import CircuitInspector
from .features import FeatureBrowser
from .html import CSS
from .runs import RunsDir
from .tab import Context, Opening
from .tabs import TABS


def _listing(runs: RunsDir):
    """The `runs` endpoint: what the runs directory holds now, rescanned on each call."""
    def listing():
        now = runs.scan()
        # "location", not "path": gradio_client would take a dict with a "path" key for a file to download
        entry = lambda e: {("location" if k == "path" else k): v for k, v in vars(e).items()}
        return {"saes": [entry(e) for e in now.saes], "circuits": [entry(e) for e in now.circuits],
                "allocations": now.allocations, "selections": now.selections, "orders": now.orders,
                "steerings": now.steerings}
    return listing


def _open(app: gr.Blocks, openings: list[Opening]) -> None:
    """One page-load event for every tab's opening, so the page fills in with one request."""
    if not openings:
        return

    def opening():
        return [v for o in openings for v in o.values()]
    app.load(opening, None, [c for o in openings for c in o.outputs], api_name=False)


def build_app(root: str | Path = "runs") -> gr.Blocks:
    runs = RunsDir(root)
    ctx = Context(runs, FeatureBrowser(runs), CircuitInspector(runs), runs.scan())
    with gr.Blocks(title="interp workbench") as app:
        gr.Markdown(f"# interp workbench\nruns directory: `{runs.root}` · {len(ctx.found.saes)} SAEs · "
                    f"{len(ctx.found.circuits)} circuits")
        tabs = [tab() for tab in TABS]
        for tab in tabs:
            with gr.Tab(tab.title):
                tab.build(ctx)
        listing_out = gr.JSON(visible=False)
        app.load(_listing(runs), None, listing_out, api_name="runs")
        _open(app, [o for tab in tabs if (o := tab.opening(ctx))])
    return app


def launch(root: str | Path = "runs", host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           block: bool = True):
    """Serve the app (localhost unless told otherwise); the app reads only files under `root`."""
    app = build_app(root)
    app.queue().launch(server_name=host, server_port=port, share=share, css=CSS, prevent_thread_lock=not block,
                       quiet=not block, footer_links=["api"])
    return app
