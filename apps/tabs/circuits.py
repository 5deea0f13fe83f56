"""The Circuits tab: one circuit as a layered graph, two checkpoints compared, and CircuitLoRA allocations."""

from __future__ import annotations

import gradio as gr

from ..tab import Context, Opening, Tab, shown


def _partner(circuits) -> str | None:
    """The comparison's default: the newest other circuit of the first one's model and task."""
    if not circuits:
        return None
    same = [c.path for c in circuits[1:] if (c.model, c.task) == (circuits[0].model, circuits[0].task)]
    return same[0] if same else None


class CircuitsTab(Tab):
    title = "Circuits"

    def build(self, ctx: Context) -> None:
        circuits = ctx.found.circuits
        choices = [(e.label, e.path) for e in circuits]
        with gr.Row():
            self.circ_a = gr.Dropdown(choices, value=circuits[0].path if circuits else None,
                                      label="circuit (model · task · checkpoint)", scale=4, allow_custom_value=True)
            self.share = gr.Slider(0.5, 50, 5, step=0.5, label="edges kept (% of all)")
            self.top_n = gr.Number(0, precision=0, label="or top n edges (0: use %)")
            self.qkv = gr.CheckboxGroup(["q", "k", "v"], value=["q", "k", "v"], label="edges into heads")
        self.summary = gr.HTML()
        self.plot = gr.Plot(elem_id="circuit-graph")
        self._comparison(choices, _partner(circuits))
        with gr.Accordion("CircuitLoRA allocations", open=False):
            allocations = ctx.found.allocations
            self.alloc = gr.Dropdown(allocations, value=allocations[0] if allocations else None,
                                     label="allocation.json", allow_custom_value=True)
            self.alloc_plot = gr.Plot()
        self._wire(ctx)

    def _comparison(self, choices: list, partner: str | None) -> None:
        with gr.Accordion("compare with another checkpoint", open=True):
            with gr.Row():
                self.circ_b = gr.Dropdown(choices, value=partner, label="second circuit", scale=4,
                                          allow_custom_value=True)
                self.count_by = gr.Radio(["source", "target"], value="source", label="count edge change by")
                self.rule = gr.Textbox("topk:1", label="critical layers (topk:N, mean+std)")
                self.r_other = gr.Number(4, precision=0, label="r other")
                self.r_critical = gr.Number(16, precision=0, label="r critical")
            self.compare_btn = gr.Button("compare")
            self.cmp_summary = gr.HTML()
            self.cmp_plot = gr.Plot(elem_id="compare-graph")
            self.change_plot = gr.Plot(elem_id="change-bars")

    def _wire(self, ctx: Context) -> None:
        inspector = ctx.inspector
        self.view = shown(inspector.view)
        shape = [self.circ_a, self.share, self.top_n, self.qkv]  # which circuit, and which of its edges
        # any control redraws the graph; only the circuit's change is the API endpoint
        for trigger in (self.circ_a.change, self.share.release, self.top_n.submit, self.qkv.change):
            trigger(self.view, shape, [self.plot, self.summary],
                    api_name="circuit" if trigger == self.circ_a.change else False)
        self.compare_btn.click(shown(inspector.compare),
                               [self.circ_a, self.circ_b, self.share, self.top_n, self.qkv, self.count_by, self.rule,
                                self.r_other, self.r_critical],
                               [self.cmp_plot, self.change_plot, self.cmp_summary], api_name="compare")
        self.alloc.change(shown(inspector.allocation), self.alloc, self.alloc_plot, api_name="allocation")

    def opening(self, ctx: Context) -> Opening:
        """The newest circuit drawn, and the newest allocation."""
        circuits, allocations = ctx.found.circuits, ctx.found.allocations

        def values():
            out = [gr.skip()] * 3
            if circuits:
                out[:2] = self.view(circuits[0].path)
            if allocations:
                out[2] = ctx.inspector.allocation(allocations[0])
            return out
        return Opening([self.plot, self.summary, self.alloc_plot], values)
