"""Steering, measured (CLI: `interp dlm steer-eval`): diffusion-time steering of a diffusion LM against
autoregressive steering of an AR LM, on latents with a clear concept, judged without an LLM.

Latents are chosen per model and concept (number ranges, arithmetic operators: `CONCEPTS`) from their logit
effects (the share of the 20 tokens their decoder direction promotes most that belong to the concept) among the
latents whose strongest context on task text is a concept token. Each latent steers every prompt at each
strength (saes/steering.py: AR adds strength x the unit decoder direction at every position; diffusion adds
strength x the position's largest SAE activation at every denoising step). Concept score: the share of
generated tokens that belong to the concept (the rule), and the latent's activation re-read by the SAE on the
unsteered model over the generated tokens. Fluency: the log-perplexity of the generated tokens under the other
model and under the model's own (an AR model: causal; a diffusion model: each token masked alone). Per method,
concept gained against fluency lost, both relative to strength 0.
"""

from __future__ import annotations

import json
import math
from itertools import chain, zip_longest
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from interp.errors import InterpError
from interp.options import check_fields, opt

CONCEPTS = {
    "digits 0-9": lambda s: s.isdigit() and int(s) <= 9,
    "numbers 10-99": lambda s: s.isdigit() and 10 <= int(s) <= 99,
    "numbers 100-999": lambda s: s.isdigit() and 100 <= int(s) <= 999,
    "operators": lambda s: s in {"+", "-", "*", "/", "plus", "minus", "times"},
}
BUDGETS = (0.5, 1.0, 2.0, 4.0, 8.0)  # fluency losses (nats of log-perplexity under the other model) compared at


@dataclass
class SteerEvalConfig:
    diffusion_model: str = opt("mdlm-mini", "the diffusion LM (diffusion-time steering)")
    ar_model: str = opt("pythia-mini", "the autoregressive LM (AR steering); shares the diffusion LM's tokenizer")
    layer: int | None = opt(None, "block whose residual stream both SAEs read (default: the middle one)", min=0)
    sae_tokens: int = opt(200_000, "training activations of each model's SAE", min=1)
    per_concept: int = opt(2, "latents steered per concept and model", min=1)
    prompts: int = opt(8, "task prompts steered (from the arithmetic families' test splits)", min=1)
    n_tokens: int = opt(12, "generated tokens (diffusion: masks, one committed per step)", min=1)
    ar_strengths: list[float] = opt(factory=lambda: [0.0, 4.0, 8.0, 16.0, 32.0, 64.0], flag="ar_strength",
                                    help="AR strengths: multiples of the unit decoder direction")
    diffusion_amps: list[float] = opt(factory=lambda: [0.0, 16.0, 32.0, 64.0, 128.0, 256.0], flag="diffusion_amp",
                                      help="diffusion amps: multiples of the position's largest SAE activation")
    positions: str = opt("all", "diffusion steering on all positions or where the latent is most active",
                         choices=("all", "active"))
    seed: int = opt(0, "seed of every random stream of the run", min=0)
    out: str = opt("runs/dlm-steer", "run directory (steering.json, .md, .html; per model sae/)")

    def validate(self) -> "SteerEvalConfig":
        check_fields(self)
        for name in ("ar_strengths", "diffusion_amps"):
            values = getattr(self, name)
            if not values or values[0] != 0 or any(b <= a for a, b in zip(values, values[1:])):
                raise InterpError(f"--{name[:-1].replace('_', '-')} must start at 0 and rise (got {values})")
        return self


def concept_tokens(tokenizer) -> dict[str, torch.Tensor]:
    """{concept: bool [vocab]}: the tokens whose text (leading space markers stripped) the concept's rule accepts."""
    words = [tokenizer.convert_tokens_to_string([t]).strip() for t in tokenizer.convert_ids_to_tokens(
        list(range(len(tokenizer))))]
    return {c: torch.tensor([rule(w) for w in words]) for c, rule in CONCEPTS.items()}


@torch.no_grad()
def choose_latents(loaded, sae, hook: str, concepts: dict[str, torch.Tensor], texts, per_concept: int) -> list[dict]:
    """Per concept, the `per_concept` latents whose 20 most promoted tokens hold the largest share of concept
    tokens, among latents whose strongest context is a concept token (all live latents when none is)."""
    from .stability import latent_profile

    w_u = loaded.model.get_output_embeddings().weight.detach().float()  # [vocab, d_model]
    w_dec = sae.W_dec.detach().float()
    promoted = torch.cat([(w_dec[i:i + 1024] @ w_u.T).topk(20, dim=1).indices for i in range(0, len(w_dec), 1024)])
    profile = latent_profile(loaded, hook, sae, texts, 1)
    top_token = torch.tensor(profile["token"])
    chosen = []
    for name, member in concepts.items():
        share = member[promoted].float().mean(1)
        own = (top_token >= 0) & member[top_token.clamp_min(0)]
        pool = own if own.any() else top_token >= 0
        for latent in torch.where(pool, share, torch.full_like(share, -1)).topk(per_concept).indices.tolist():
            chosen.append({"concept": name, "latent": latent, "logit_share": float(share[latent]),
                           "top_context_in_concept": bool(own[latent])})
    return chosen


@torch.no_grad()
def generate(loaded, hook: str, sae, ids: torch.Tensor, latent: int, strength: float, n_tokens: int,
             positions: str) -> torch.Tensor:
    """The generated ids [B, n_tokens] of prompts `ids` [B, P] steered with `latent` at `strength` (0: none)."""
    from interp.diffusion import sample

    from .steering import _ar_hook, _diffusion_hook, _greedy

    if loaded.is_diffusion:
        hooks = [(hook, _diffusion_hook(sae, latent, strength, positions))] if strength else []
        model = lambda input_ids: SimpleNamespace(logits=loaded.bridge.run_with_hooks(input_ids, fwd_hooks=hooks))
        out = sample(model, ids, loaded.tokenizer.mask_token_id, gen_length=n_tokens, denoise_steps=n_tokens)
    else:
        hooks = [(hook, _ar_hook(sae, latent, strength))] if strength else []
        for out in _greedy(loaded.bridge, ids, n_tokens, hooks):
            pass
    return out[:, ids.shape[1]:]


@torch.no_grad()
def log_perplexity(loaded, prompt: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """[B] mean negative log-likelihood of the generated tokens after the prompt: causal for an AR model; for a
    diffusion model each generated token masked alone, the rest visible."""
    x = torch.cat([prompt, generated], 1)
    p, n = prompt.shape[1], generated.shape[1]
    if not loaded.is_diffusion:
        logits = loaded.model(input_ids=x).logits[:, p - 1:-1]
        return F.cross_entropy(logits.transpose(1, 2).float(), generated, reduction="none").mean(1)
    nll = torch.zeros(x.shape[0])
    for i in range(n):
        masked = x.clone()
        masked[:, p + i] = loaded.tokenizer.mask_token_id
        logits = loaded.model(input_ids=masked).logits[:, p + i]
        nll += F.cross_entropy(logits.float(), generated[:, i], reduction="none")
    return nll / n


@torch.no_grad()
def reread(loaded, hook: str, sae, prompt: torch.Tensor, generated: torch.Tensor, latent: int) -> torch.Tensor:
    """[B] the latent's mean activation over the generated tokens, read by the SAE on the unsteered model."""
    _, cache = loaded.bridge.run_with_cache(torch.cat([prompt, generated], 1), names_filter=[hook])
    return sae.encode(cache[hook][:, prompt.shape[1]:].flatten(2).float())[..., latent].mean(1)


def _method_rows(cfg: SteerEvalConfig, loaded, other, hook: str, sae, strengths, concepts, groups, show_progress):
    from tqdm.auto import tqdm

    from .stability import _texts

    texts = _texts(loaded.tokenizer, 16, cfg.seed)
    latents = choose_latents(loaded, sae, hook, concepts, texts, cfg.per_concept)
    rows = []
    bar = tqdm(total=len(latents) * len(strengths), desc=f"steer {Path(loaded.name).name}", disable=not show_progress)
    for choice in latents:
        member = concepts[choice["concept"]]
        for s in strengths:
            got = {"rule": [], "reread": [], "nll_other": [], "nll_own": []}
            for ids in groups:
                gen = generate(loaded, hook, sae, ids, choice["latent"], s, cfg.n_tokens, cfg.positions)
                got["rule"] += member[gen].float().mean(1).tolist()
                got["reread"] += reread(loaded, hook, sae, ids, gen, choice["latent"]).tolist()
                got["nll_other"] += log_perplexity(other, ids, gen).tolist()
                got["nll_own"] += log_perplexity(loaded, ids, gen).tolist()
            rows.append({**choice, "strength": s, **{k: sum(v) / len(v) for k, v in got.items()}})
            bar.update(1)
    bar.close()
    return rows, latents


def summarise(rows: list[dict], strengths: list[float]) -> dict:
    """Per strength the means over latents of the concept and fluency gains against strength 0; and, at each
    fluency budget, the largest concept gain among strengths whose fluency loss stays within it."""
    base = {(r["latent"], r["concept"]): r for r in rows if r["strength"] == 0}
    curve = []
    for s in strengths:
        at = [r for r in rows if r["strength"] == s]
        d = lambda key: sum(r[key] - base[(r["latent"], r["concept"])][key] for r in at) / len(at)
        curve.append({"strength": s, "concept_gain": d("rule"), "reread_gain": d("reread"),
                      "fluency_loss": d("nll_other"), "own_fluency_loss": d("nll_own")})
    matched = {str(b): max((c["concept_gain"] for c in curve if c["fluency_loss"] <= b), default=None) for b in BUDGETS}
    return {"curve": curve, "matched": matched}


def steer_eval(cfg: SteerEvalConfig, resume: bool = False, show_progress: bool = True) -> dict:
    """Run the comparison (module docstring) into `cfg.out`; returns and writes steering.json, .md and .html."""
    from interp.loading import load_model
    from interp.rundir import RunDir, write_atomic
    from interp.tasks import ARITHMETIC, make_examples

    from .config import default_hook
    from .train import sae_at

    cfg.validate()
    dlm, ar = load_model(cfg.diffusion_model), load_model(cfg.ar_model)
    if not dlm.is_diffusion or ar.is_diffusion:
        raise InterpError(f"--diffusion-model must be a diffusion LM and --ar-model an autoregressive one (got "
                          f"{cfg.diffusion_model}: {dlm.kind}, {cfg.ar_model}: {ar.kind})")
    if dlm.tokenizer.get_vocab() != ar.tokenizer.get_vocab():
        raise InterpError("the two models' tokenizers differ; each scores the other's text token by token, so they "
                          "must share one")
    run = RunDir(cfg.out, "dlm-steer", atomic=False)
    run.check(resume=resume, reuse_finished=True)
    with run.writing(resume=resume, reuse_finished=True) as out:
        per = math.ceil(cfg.prompts / len(ARITHMETIC))  # the families in turn
        each = [[e.clean for e in make_examples(t, "test", per, cfg.seed, tokenizer=ar.tokenizer)] for t in ARITHMETIC]
        prompts = [p for p in chain.from_iterable(zip_longest(*each)) if p][:cfg.prompts]
        ids = ar.tokenizer(prompts)["input_ids"]
        by_len: dict[int, list[list[int]]] = {}
        for x in ids:
            by_len.setdefault(len(x), []).append(x)
        groups = [torch.tensor(v) for v in by_len.values()]
        concepts = concept_tokens(ar.tokenizer)
        result = {"config": asdict(cfg), "prompts": prompts, "methods": {}}
        for method, loaded, other, strengths in (("diffusion", dlm, ar, cfg.diffusion_amps),
                                                 ("autoregressive", ar, dlm, cfg.ar_strengths)):
            n_layers = len(loaded.bridge.blocks)
            if cfg.layer is not None and cfg.layer >= n_layers:
                raise InterpError(f"layer {cfg.layer} does not exist; {loaded.name} has layers 0..{n_layers - 1}")
            hook = f"blocks.{cfg.layer}.hook_resid_post" if cfg.layer is not None else default_hook(n_layers)
            sae = sae_at(loaded.name, hook, cfg.sae_tokens, cfg.seed, out / Path(loaded.name).name / "sae", resume,
                         show_progress)
            rows, latents = _method_rows(cfg, loaded, other, hook, sae, strengths, concepts, groups, show_progress)
            result["methods"][method] = {"model": loaded.name, "hook": hook, "latents": latents, "rows": rows,
                                         **summarise(rows, strengths)}
        result["verdict"] = verdict(result)
        write_atomic(out / "steering.json", json.dumps(result, indent=1))
        write_atomic(out / "steering.md", markdown_table(result) + "\n" + result["verdict"] + "\n")
        tmp = out / "steering.html.tmp"
        steering_figure(result).write_html(tmp, include_plotlyjs="directory")
        tmp.replace(out / "steering.html")
    return result


def verdict(result: dict) -> str:
    d, a = result["methods"]["diffusion"]["matched"], result["methods"]["autoregressive"]["matched"]
    parts = []
    for b in map(str, BUDGETS):
        if d[b] is None or a[b] is None:
            parts.append(f"within {b} nats: {'neither' if d[b] is None and a[b] is None else 'only one'} method stays")
            continue
        better = "diffusion-time" if d[b] > a[b] else "autoregressive"
        parts.append(f"within {b} nats of fluency lost, concept gained {d[b]:+.3f} (diffusion-time) against "
                     f"{a[b]:+.3f} (autoregressive): {better} steering ahead")
    return "; ".join(parts)


def markdown_table(result: dict) -> str:
    """One row per method and strength: the concept and fluency changes against strength 0."""
    head = ["method", "strength", "concept gained (rule)", "latent re-read gained", "fluency lost (other model)",
            "fluency lost (own)"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for method, m in result["methods"].items():
        for c in m["curve"]:
            lines.append(f"| {method} | {c['strength']:g} | {c['concept_gain']:+.3f} | {c['reread_gain']:+.3f} | "
                         f"{c['fluency_loss']:+.3f} | {c['own_fluency_loss']:+.3f} |")
    return "\n".join(lines) + "\n"


def steering_figure(result: dict):
    """Concept gained against fluency lost, one curve per method (its points: the strengths)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for method, m in result["methods"].items():
        fig.add_trace(go.Scatter(x=[c["fluency_loss"] for c in m["curve"]], y=[c["concept_gain"] for c in m["curve"]],
                                 mode="lines+markers+text", name=f"{method} ({Path(m['model']).name})",
                                 text=[f"{c['strength']:g}" for c in m["curve"]], textposition="top center"))
    fig.update_layout(template="plotly_white", height=500, xaxis_title="fluency lost: Δ log-perplexity under the "
                      "other model (nats)", yaxis_title="concept gained: Δ share of concept tokens",
                      title="steering: concept gained at matched fluency loss (labels: strength)")
    return fig

