"""The computational graph, EAP / EAP-IG edge attribution, circuit evaluation, checkpoint comparison and
circuit-aware LoRA (issues 3/6 and 4/6). So far only the graph exists (`circuits.graph.Graph`).

Bridge hooks for edge attribution, checked on `pythia-mini` with `load_model(..., hooks_for_edges=True)`:
node outputs are `hook_embed` (input), `blocks.{l}.attn.hook_result` [B, T, H, d] (per head, without the
output bias, which is the same in clean and corrupted runs) and `blocks.{l}.hook_mlp_out`; node inputs are
`blocks.{l}.hook_{q,k,v}_input` [B, T, H, d] and `blocks.{l}.hook_mlp_in`, both equal to the residual stream
before the layer norm (parallel residual: the MLP reads `hook_resid_pre` too), and `ln_final.hook_in`.
"""
