"""The Gradio app: a feature browser and a circuit/edge inspector over one runs directory.

    from apps.app import build_app
    build_app("runs").launch()          # or: interp app runs/

Every event has an api_name, so gradio_client (and notebooks) can call each view directly.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

import gradio as gr

from interp.errors import InterpError

from .circuits_view import CircuitInspector
from .features import MAX_CHARS, MAX_NEW_TOKENS, FeatureBrowser
from .html import CSS, esc
from .runs import RunsDir

TABLE_HEADERS = ["latent", "density %", "max act", "mean act", "dead"]
TEXT_INFO = f"at most {MAX_CHARS} characters, and at most the model's context length in tokens"


def _error(e: InterpError) -> gr.Error:
    # the popup renders HTML, and the message can quote what the caller sent
    return gr.Error(esc(e), print_exception=False)


def _shown(fn):
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


def _partner(circuits) -> str | None:
    """The comparison's default: the newest other circuit of the first one's model and task."""
    same = [c.path for c in circuits[1:] if circuits and (c.model, c.task) == (circuits[0].model, circuits[0].task)]
    return same[0] if same else None


def build_app(root: str | Path = "runs") -> gr.Blocks:
    runs = RunsDir(root)
    features, inspector = FeatureBrowser(runs), CircuitInspector(runs)
    found = runs.scan()
    saes, circuits, allocations = found.saes, found.circuits, found.allocations
    sae_choices = [(e.label, e.path) for e in saes]
    circuit_choices = [(e.label, e.path) for e in circuits]
    first_sae = saes[0].path if saes else None

    def listing():
        now = runs.scan()
        # "location", not "path": gradio_client would take a dict with a "path" key for a file to download
        entry = lambda e: {("location" if k == "path" else k): v for k, v in vars(e).items()}
        return {"saes": [entry(e) for e in now.saes], "circuits": [entry(e) for e in now.circuits],
                "allocations": now.allocations, "selections": now.selections}

    def first_latent(rel, sort_by):
        rows = features.table(rel, sort_by)
        return rows[0][0] if rows else 0

    with gr.Blocks(title="interp workbench") as app:
        gr.Markdown(f"# interp workbench\nruns directory: `{runs.root}` · {len(saes)} SAEs · {len(circuits)} circuits")
        with gr.Tab("Features"):
            with gr.Row():
                sae = gr.Dropdown(sae_choices, value=first_sae, label="SAE (model · hook · k)", scale=4,
                                  allow_custom_value=True)
                sort_by = gr.Radio(["density", "max_act"], value="density", label="sort by")
                dead = gr.Checkbox(False, label="show dead latents")
            with gr.Row():
                with gr.Column(scale=1):
                    table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, max_height=600,
                                         label="features, first 1000 (click a row)")
                with gr.Column(scale=3):
                    latent = gr.Number(0, precision=0, label="latent")
                    page = gr.HTML(elem_id="feature-page")
                    hist = gr.Plot(label="activation histogram", elem_id="feature-histogram")
                    with gr.Row():
                        logits = gr.HTML(elem_id="feature-logits")
                        near = gr.HTML(elem_id="feature-neighbours")
            with gr.Accordion("test text: this feature's activation per token", open=True):
                text = gr.Textbox("12 plus 7 is 19", label="text", info=TEXT_INFO, max_length=MAX_CHARS)
                test_btn = gr.Button("test")
                test_out = gr.HTML(elem_id="test-text")
            with gr.Accordion("search: the features most active on a text", open=False):
                query = gr.Textbox("the product of 6 and 7 is 42", label="text", info=TEXT_INFO,
                                   max_length=MAX_CHARS)
                search_btn = gr.Button("search")
                search_out = gr.HTML()
            with gr.Accordion("steering", open=False):
                prompt = gr.Textbox("12 plus 7 is", label="prompt", info=TEXT_INFO, max_length=MAX_CHARS)
                with gr.Row():
                    strength = gr.Slider(-32, 32, 8, step=0.5, label="strength (autoregressive: x decoder direction)")
                    amp = gr.Slider(-8, 8, 2, step=0.1, label="amp (diffusion: x position's max activation)")
                    where = gr.Radio(["all", "active"], value="all", label="diffusion: positions")
                    n_tokens = gr.Number(12, precision=0, label=f"tokens (1 to {MAX_NEW_TOKENS})",
                                         info="prompt plus tokens: at most the model's context length")
                steer_btn = gr.Button("steer")
                steer_out = gr.HTML()
        with gr.Tab("Circuits"):
            with gr.Row():
                circ_a = gr.Dropdown(circuit_choices, value=circuit_choices[0][1] if circuits else None,
                                     label="circuit (model · task · checkpoint)", scale=4, allow_custom_value=True)
                share = gr.Slider(0.5, 50, 5, step=0.5, label="edges kept (% of all)")
                top_n = gr.Number(0, precision=0, label="or top n edges (0: use %)")
                qkv = gr.CheckboxGroup(["q", "k", "v"], value=["q", "k", "v"], label="edges into heads")
            circ_summary = gr.HTML()
            circ_plot = gr.Plot(elem_id="circuit-graph")
            with gr.Accordion("compare with another checkpoint", open=True):
                with gr.Row():
                    circ_b = gr.Dropdown(circuit_choices, value=_partner(circuits),
                                         label="second circuit", scale=4, allow_custom_value=True)
                    by = gr.Radio(["source", "target"], value="source", label="count edge change by")
                    rule = gr.Textbox("topk:1", label="critical layers (topk:N, mean+std)")
                    r_other = gr.Number(4, precision=0, label="r other")
                    r_critical = gr.Number(16, precision=0, label="r critical")
                compare_btn = gr.Button("compare")
                cmp_summary = gr.HTML()
                cmp_plot = gr.Plot(elem_id="compare-graph")
                change_plot = gr.Plot(elem_id="change-bars")
            with gr.Accordion("CircuitLoRA allocations", open=False):
                alloc = gr.Dropdown(allocations, value=allocations[0] if allocations else None, label="allocation.json",
                                    allow_custom_value=True)
                alloc_plot = gr.Plot()
        with gr.Tab("Unlearning"):
            selection = gr.Dropdown(found.selections, value=found.selections[0] if found.selections else None,
                                    label="unlearning run (selection.json)", allow_custom_value=True)
            selection_out = gr.HTML(elem_id="unlearn-features")
        listing_out = gr.JSON(visible=False)

        for trigger in (sae.change, sort_by.change, dead.change):
            trigger(_shown(features.table), [sae, sort_by, dead], table,
                    api_name="feature_table" if trigger == sae.change else False)
        sae.change(_shown(first_latent), [sae, sort_by], latent, api_name=False)
        latent.change(_shown(features.page), [sae, latent], [page, hist, logits, near], api_name="feature_page")

        def pick(evt: gr.SelectData):
            return evt.row_value[0]
        table.select(pick, None, latent, api_name=False)
        test_btn.click(_shown(features.test_text), [sae, latent, text], test_out, api_name="test_text")
        search_btn.click(_shown(features.search), [sae, query], search_out, api_name="search")
        steer_btn.click(_shown(features.steer), [sae, latent, prompt, strength, amp, where, n_tokens], steer_out,
                        api_name="steer")
        view_fn = _shown(inspector.view)
        for trigger in (circ_a.change, share.release, top_n.submit, qkv.change):
            trigger(view_fn, [circ_a, share, top_n, qkv], [circ_plot, circ_summary],
                    api_name="circuit" if trigger == circ_a.change else False)
        compare_btn.click(_shown(inspector.compare), [circ_a, circ_b, share, top_n, qkv, by, rule, r_other, r_critical],
                          [cmp_plot, change_plot, cmp_summary], api_name="compare")
        alloc.change(_shown(inspector.allocation), alloc, alloc_plot, api_name="allocation")
        selection.change(_shown(features.selection), selection, selection_out, api_name="unlearn_features")
        app.load(listing, None, listing_out, api_name="runs")

        def opening():  # the newest SAE's table and first feature, the newest circuit
            out = [gr.skip()] * 5
            if first_sae:
                rows = features.table(first_sae)
                out[:2] = [rows, rows[0][0] if rows else 0]
            if circuits:
                out[2:4] = view_fn(circuits[0].path)
            if allocations:
                out[4] = inspector.allocation(allocations[0])
            return out
        app.load(opening, None, [table, latent, circ_plot, circ_summary, alloc_plot], api_name=False)
    return app


def launch(root: str | Path = "runs", host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           block: bool = True):
    """Serve the app (localhost unless told otherwise); the app reads only files under `root`."""
    app = build_app(root)
    app.queue().launch(server_name=host, server_port=port, share=share, css=CSS, prevent_thread_lock=not block,
                       quiet=not block, footer_links=["api"])
    return app
