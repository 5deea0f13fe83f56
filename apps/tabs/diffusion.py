"""The Diffusion tab: an `interp dlm order` run's stability curves per remasking strategy, and one prompt's
denoising trajectory through the SAE latents."""

from __future__ import annotations

import gradio as gr

from interp.errors import InterpError

from ..order_view import OrderViews
from ..tab import Context, Opening, Tab, shown


class DiffusionTab(Tab):
    title = "Diffusion"

    def build(self, ctx: Context) -> None:
        self.views = OrderViews(ctx.runs)
        orders = ctx.found.orders
        self.order = gr.Dropdown(orders, value=orders[0] if orders else None,
                                 label="decoding-order run (order.json)", allow_custom_value=True)
        self.summary = gr.HTML(elem_id="order-summary")
        self.plot = gr.Plot(elem_id="order-curves")
        with gr.Row():
            self.strategy = gr.Dropdown([], label="strategy", allow_custom_value=True)
            self.prompt = gr.Dropdown([], label="prompt (index)", allow_custom_value=True)
            self.hook = gr.Dropdown([], label="layer", allow_custom_value=True)
        self.trajectory = gr.HTML(elem_id="order-trajectory")
        self.order.change(shown(self._open), self.order, [self.plot, self.summary, self.strategy, self.prompt, self.hook],
                          api_name="order_curves")
        pick = [self.order, self.strategy, self.prompt, self.hook]
        show = shown(self.views.trajectory)
        for control in pick[1:]:
            control.change(show, pick, self.trajectory, api_name="order_trajectory" if control is self.hook else False)

    def _open(self, rel: str):
        fig, summary = self.views.curves(rel)
        strategies, prompts, hooks = self.views.choices(rel)
        first = lambda xs: xs[0] if xs else None
        return (fig, summary, gr.Dropdown(strategies, value=first(strategies)),
                gr.Dropdown(prompts, value=first(prompts)), gr.Dropdown(hooks, value=first(hooks)))

    def opening(self, ctx: Context) -> Opening | None:
        orders = ctx.found.orders
        if not orders:
            return None
        def values():
            try:
                return list(self._open(orders[0]))
            except InterpError:  # a file named order.json that is not one: the page opens without it
                return [gr.skip()] * 5
        return Opening([self.plot, self.summary, self.strategy, self.prompt, self.hook], values)
