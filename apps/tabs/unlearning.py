"""The Unlearning tab: an `interp unlearn` run's chosen layer, with its forget and irrelevant features."""

from __future__ import annotations

import gradio as gr

from ..tab import Context, Tab, shown


class UnlearningTab(Tab):
    title = "Unlearning"

    def build(self, ctx: Context) -> None:
        selections = ctx.found.selections
        selection = gr.Dropdown(selections, value=selections[0] if selections else None,
                                label="unlearning run (selection.json)", allow_custom_value=True)
        out = gr.HTML(elem_id="unlearn-features")
        selection.change(shown(ctx.browser.selection), selection, out, api_name="unlearn_features")
