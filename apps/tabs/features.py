"""The Features tab: an SAE's feature table, one feature's page, test text, search and steering."""

from __future__ import annotations

import gradio as gr

from ..features import MAX_CHARS, MAX_NEW_TOKENS
from ..tab import Context, Opening, Tab, shown

TABLE_HEADERS = ["latent", "density %", "max act", "mean act", "dead"]
TEXT_INFO = f"at most {MAX_CHARS} characters, and at most the model's context length in tokens"


def _text(value: str, label: str = "text") -> gr.Textbox:
    return gr.Textbox(value, label=label, info=TEXT_INFO, max_length=MAX_CHARS)


class FeaturesTab(Tab):
    title = "Features"

    def build(self, ctx: Context) -> None:
        saes = ctx.found.saes
        self.first_sae = saes[0].path if saes else None
        with gr.Row():
            self.sae = gr.Dropdown([(e.label, e.path) for e in saes], value=self.first_sae,
                                   label="SAE (model · hook · k)", scale=4, allow_custom_value=True)
            self.sort_by = gr.Radio(["density", "max_act"], value="density", label="sort by")
            self.dead = gr.Checkbox(False, label="show dead latents")
        self._table_and_page()
        self._text_tools()
        self._steering()
        self._wire(ctx)

    def _table_and_page(self) -> None:
        with gr.Row():
            with gr.Column(scale=1):
                self.table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, max_height=600,
                                          label="features, first 1000 (click a row)")
            with gr.Column(scale=3):
                self.latent = gr.Number(0, precision=0, label="latent")
                self.page = gr.HTML(elem_id="feature-page")
                self.hist = gr.Plot(label="activation histogram", elem_id="feature-histogram")
                with gr.Row():
                    self.logits = gr.HTML(elem_id="feature-logits")
                    self.near = gr.HTML(elem_id="feature-neighbours")

    def _text_tools(self) -> None:
        with gr.Accordion("test text: this feature's activation per token", open=True):
            self.text = _text("12 plus 7 is 19")
            self.test_btn = gr.Button("test")
            self.test_out = gr.HTML(elem_id="test-text")
        with gr.Accordion("search: the features most active on a text", open=False):
            self.query = _text("the product of 6 and 7 is 42")
            self.search_btn = gr.Button("search")
            self.search_out = gr.HTML()

    def _steering(self) -> None:
        with gr.Accordion("steering", open=False):
            self.prompt = _text("12 plus 7 is", "prompt")
            with gr.Row():
                self.strength = gr.Slider(-32, 32, 8, step=0.5,
                                          label="strength (autoregressive: x decoder direction)")
                self.amp = gr.Slider(-8, 8, 2, step=0.1, label="amp (diffusion: x position's max activation)")
                self.where = gr.Radio(["all", "active"], value="all", label="diffusion: positions")
                self.n_tokens = gr.Number(12, precision=0, label=f"tokens (1 to {MAX_NEW_TOKENS})",
                                          info="prompt plus tokens: at most the model's context length")
            self.steer_btn = gr.Button("steer")
            self.steer_out = gr.HTML()

    def _wire(self, ctx: Context) -> None:
        browser = ctx.browser

        def first_latent(rel, sort_by):
            rows = browser.table(rel, sort_by)
            return rows[0][0] if rows else 0

        def pick(evt: gr.SelectData):
            return evt.row_value[0]

        # any of the three refreshes the table; only the SAE's change is the API endpoint
        for trigger in (self.sae.change, self.sort_by.change, self.dead.change):
            trigger(shown(browser.table), [self.sae, self.sort_by, self.dead], self.table,
                    api_name="feature_table" if trigger == self.sae.change else False)
        self.sae.change(shown(first_latent), [self.sae, self.sort_by], self.latent, api_name=False)
        self.latent.change(shown(browser.page), [self.sae, self.latent],
                           [self.page, self.hist, self.logits, self.near], api_name="feature_page")
        self.table.select(pick, None, self.latent, api_name=False)
        self.test_btn.click(shown(browser.test_text), [self.sae, self.latent, self.text], self.test_out,
                            api_name="test_text")
        self.search_btn.click(shown(browser.search), [self.sae, self.query], self.search_out, api_name="search")
        self.steer_btn.click(shown(browser.steer), [self.sae, self.latent, self.prompt, self.strength, self.amp,
                                                    self.where, self.n_tokens], self.steer_out, api_name="steer")

    def opening(self, ctx: Context) -> Opening:
        """The newest SAE's table and its first feature (setting the latent opens that feature's page)."""
        def values():
            if not self.first_sae:
                return [gr.skip(), gr.skip()]
            rows = ctx.browser.table(self.first_sae)
            return [rows, rows[0][0] if rows else 0]
        return Opening([self.table, self.latent], values)
