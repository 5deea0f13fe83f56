"""The Diffusion tab: an `interp dlm order` run's stability curves per remasking strategy, one prompt's
denoising trajectory through the SAE latents, and an `interp dlm steer-eval` run's steering curves."""

from __future__ import annotations

import gradio as gr

from interp.errors import InterpError

from ..diffusion_view import DiffusionViews
from ..tab import Context, Opening, Tab, shown


class DiffusionTab(Tab):
    title = "Diffusion"

    def build(self, ctx: Context) -> None:
        self.views = DiffusionViews(ctx.runs)
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
        with gr.Accordion("steering: diffusion-time against autoregressive", open=True):
            steerings = ctx.found.steerings
            self.steer_run = gr.Dropdown(steerings, value=steerings[0] if steerings else None,
                                         label="steering run (steering.json)", allow_custom_value=True)
            self.steer_plot = gr.Plot(elem_id="steering-curves")
            self.steer_table = gr.HTML(elem_id="steering-table")
        self.steer_run.change(shown(self.views.steering), self.steer_run, [self.steer_plot, self.steer_table],
                              api_name="steering_curves")
        self.order.change(shown(self._open), self.order,
                          [self.plot, self.summary, self.strategy, self.prompt, self.hook],
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
        orders, steerings = ctx.found.orders, ctx.found.steerings
        if not orders and not steerings:
            return None

        def values():
            # a file named order.json or steering.json that is not one: the page opens without it
            out = [gr.skip()] * 7
            try:
                out[:5] = self._open(orders[0]) if orders else out[:5]
            except InterpError:
                pass
            try:
                out[5:] = self.views.steering(steerings[0]) if steerings else out[5:]
            except InterpError:
                pass
            return out
        return Opening([self.plot, self.summary, self.strategy, self.prompt, self.hook, self.steer_plot,
                        self.steer_table], values)
