"""SAE features through fine-tuning, a diffusion LM beside an autoregressive one (CLI: `interp dlm stability`).

DLM-Scope reports that a diffusion LM's SAE features stay stable from the base model to its post-trained version.
Here the same recipe runs on each model: a Top-K SAE trained on the base model at one hook, the model fine-tuned
on a task with checkpoints (interp/finetune.py), and the base SAE applied unchanged at every checkpoint. Per
checkpoint: EV, ΔCE and L0 on held-out text (the model's own protocol: masked positions for a diffusion LM); and,
on the six arithmetic families' test prompts with their answers, each latent's firing frequency and its top
contexts, compared with the base model's: the correlation of firing frequencies, and the share of the base
model's live latents whose strongest context is the same token, and whose top contexts are mostly the same
task family.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from interp.errors import InterpError
from interp.options import check_fields, opt

MEASURES = {"explained_variance": "EV", "delta_ce": "ΔCE", "l0": "L0", "frequency_correlation": "frequency r",
            "token_kept": "top token kept", "family_kept": "top family kept", "accuracy": "task accuracy"}


@dataclass
class StabilityConfig:
    models: list[str] = opt(factory=lambda: ["mdlm-mini", "pythia-mini"], flag="model",
                            help="models fine-tuned and compared (diffusion and autoregressive)")
    task: str = opt("add_sub", "fine-tuning task")
    steps: int = opt(200, "fine-tuning steps", min=1)
    checkpoint_every: int = opt(50, "steps between the checkpoints the SAE is applied at", min=1)
    layer: int | None = opt(None, "block whose residual stream the SAE reads (default: the middle one)", min=0)
    sae_tokens: int = opt(200_000, "training activations of each base model's SAE", min=1)
    eval_tokens: int = opt(8192, "held-out tokens for EV, ΔCE and L0 at each checkpoint", min=1)
    prompts: int = opt(32, "test prompts per arithmetic family for frequencies and top contexts", min=1)
    n_eval: int = opt(200, "test examples per task-accuracy evaluation of the fine-tuning loop", min=1)
    top: int = opt(10, "top contexts per latent", min=1)
    seed: int = opt(0, "seed of every random stream of the run", min=0)
    out: str = opt("runs/dlm-stability", "run directory (stability.json, .md, .html; per model sae/ and finetune/)")

    def validate(self) -> "StabilityConfig":
        from interp.tasks import trainable

        check_fields(self)
        trainable(self.task)
        if not self.models:
            raise InterpError("--model needs at least one value")
        if len(set(self.models)) != len(self.models):
            raise InterpError("each --model may appear once")
        return self


@torch.no_grad()
def latent_profile(loaded, hook: str, sae, texts: list[tuple[str, int]], top: int) -> dict:
    """Over `texts` ((text, family index) pairs): each latent's firing frequency [d], the token of its strongest
    context [d] (-1: never fired) and the family most of its `top` contexts come from [d] (a tie: the family of the
    stronger context; -1: never fired)."""
    d = sae.cfg.d_sae
    fired, total = torch.zeros(d), 0
    best = torch.full((d, top), -torch.inf)
    best_tok, best_fam = torch.full((d, top), -1), torch.full((d, top), -1)
    for text, family in texts:
        ids = loaded.tokenizer(text, return_tensors="pt")["input_ids"]
        _, cache = loaded.bridge.run_with_cache(ids, names_filter=[hook])
        acts = sae.encode(cache[hook][0].flatten(1).float())  # [n, d]
        fired += (acts > 0).sum(0)
        total += acts.shape[0]
        vals = torch.cat([best, acts.T.masked_fill(acts.T <= 0, -torch.inf)], 1)
        toks = torch.cat([best_tok, ids[0].expand(d, -1)], 1)
        fams = torch.cat([best_fam, torch.full((d, acts.shape[0]), family)], 1)
        best, idx = vals.topk(top, dim=1)
        best_tok, best_fam = toks.gather(1, idx), fams.gather(1, idx)
    alive = best[:, 0] > -torch.inf
    live_fams = torch.where(best > -torch.inf, best_fam, -1)
    n_fam, ranks = int(max(f for _, f in texts)) + 1, torch.arange(top)
    # most contexts wins; a tie goes to the family of the stronger context
    first = lambda f: torch.where(live_fams == f, ranks, top).min(1).values  # rank of the family's first context
    score = torch.stack([(live_fams == f).sum(1) * (top + 1) + top - first(f) for f in range(n_fam)], 1)
    return {"frequency": (fired / max(total, 1)).tolist(),
            "token": torch.where(alive, best_tok[:, 0], -1).tolist(),
            "family": torch.where(alive, score.argmax(1), -1).tolist()}


def compare_profiles(base: dict, now: dict) -> dict:
    """Firing-frequency correlation over latents live in either; shares of the base's live latents whose top token
    and top family are unchanged (a latent that died counts as changed)."""
    fb, fn = np.array(base["frequency"]), np.array(now["frequency"])
    either = (fb > 0) | (fn > 0)
    r = float(np.corrcoef(fb[either], fn[either])[0, 1]) if either.sum() > 2 and fb[either].std() and fn[either].std() \
        else None
    live = np.array(base["token"]) >= 0
    same = lambda key: float((np.array(base[key])[live] == np.array(now[key])[live]).mean()) if live.any() else None
    return {"frequency_correlation": r, "token_kept": same("token"), "family_kept": same("family"),
            "live_latents": int(live.sum())}


def _texts(tokenizer, n: int, seed: int) -> list[tuple[str, int]]:
    """The arithmetic families' test prompts with their answers (what fine-tuning reads), family-labelled."""
    from interp.answers import answer_text
    from interp.tasks import ARITHMETIC, make_examples

    return [(e.clean + answer_text(e.label), f) for f, task in enumerate(ARITHMETIC)
            for e in make_examples(task, "test", n, seed, at_most=True, tokenizer=tokenizer)]


def _model_rows(cfg: StabilityConfig, model: str, out: Path, resume: bool, show_progress: bool) -> list[dict]:
    """One row per checkpoint (the base model first) of one model."""
    from tqdm.auto import tqdm

    from interp.finetune import FinetuneConfig, checkpoints, finetune, load_at
    from interp.loading import load_model

    from .config import SAETrainConfig, default_hook
    from .evaluate import evaluate_saes
    from .train import sae_at

    base = load_model(model)
    n_layers = len(base.bridge.blocks)
    if cfg.layer is not None and cfg.layer >= n_layers:
        raise InterpError(f"layer {cfg.layer} does not exist; {model} has layers 0..{n_layers - 1}")
    hook = f"blocks.{cfg.layer}.hook_resid_post" if cfg.layer is not None else default_hook(n_layers)
    sae = sae_at(model, hook, cfg.sae_tokens, cfg.seed, out / "sae", resume, show_progress)
    ft = finetune(FinetuneConfig(model=model, task=cfg.task, steps=cfg.steps, checkpoint_every=cfg.checkpoint_every,
                                 eval_every=cfg.checkpoint_every, n_eval=cfg.n_eval, seed=cfg.seed,
                                 out=str(out / "finetune")),
                  resume=True)
    accuracy = {h["step"]: h["accuracy"] for h in ft.history} | {0: ft.accuracy_before}
    texts = _texts(base.tokenizer, cfg.prompts, cfg.seed)
    rows, profile0 = [], None
    for step, ckpt in tqdm(checkpoints(out / "finetune"), desc=f"{Path(model).name}: SAE at checkpoints",
                           disable=not show_progress):
        loaded = base if ckpt is None else load_at(model, ckpt, "full")
        m = evaluate_saes(loaded, {"sae": (hook, sae)}, n_tokens=cfg.eval_tokens, seed=cfg.seed,
                          mask_policy=SAETrainConfig().mask_policy)["sae"]
        profile = latent_profile(loaded, hook, sae, texts, cfg.top)
        profile0 = profile0 or profile
        rows.append({"step": step, "explained_variance": m["explained_variance"], "delta_ce": m["delta_ce"],
                     "l0": m["l0"], "accuracy": accuracy.get(step), **compare_profiles(profile0, profile)})
    return rows


def stability(cfg: StabilityConfig, resume: bool = False, show_progress: bool = True) -> dict:
    """Run the comparison (module docstring) into `cfg.out`; what a stopped or finished run there made (SAEs,
    fine-tuning) is reused with `resume`. Returns and writes {"config", "models": {model: [row per checkpoint]}}."""
    from interp.rundir import RunDir, write_atomic

    cfg.validate()
    run = RunDir(cfg.out, "dlm-stability", atomic=False)
    run.check(resume=resume, reuse_finished=True)
    with run.writing(resume=resume, reuse_finished=True) as out:
        result = {"config": asdict(cfg), "models": {
            m: _model_rows(cfg, m, out / Path(m).name, resume, show_progress) for m in cfg.models}}
        write_atomic(out / "stability.json", json.dumps(result, indent=1))
        write_atomic(out / "stability.md", markdown_table(result))
        tmp = out / "stability.html.tmp"
        stability_figure(result).write_html(tmp, include_plotlyjs="directory")
        tmp.replace(out / "stability.html")
    return result


def markdown_table(result: dict) -> str:
    """One row per model and checkpoint."""
    fmt = {"delta_ce": "+.4f", "l0": ".1f", "accuracy": ".1%"}
    head = ["model", "step", *MEASURES.values()]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for model, rows in result["models"].items():
        for r in rows:
            cells = ["–" if r[k] is None else format(r[k], fmt.get(k, ".3f")) for k in MEASURES]
            lines.append(f"| {model} | {r['step']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def stability_figure(result: dict):
    """Each measure against the fine-tuning step, one line per model."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    keys = [k for k in MEASURES if k != "l0"]
    fig = make_subplots(rows=2, cols=3, subplot_titles=[MEASURES[k] for k in keys])
    colors = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5"]
    for i, (model, rows) in enumerate(result["models"].items()):
        for j, k in enumerate(keys):
            fig.add_trace(go.Scatter(x=[r["step"] for r in rows], y=[r[k] for r in rows], mode="lines+markers",
                                     name=model, legendgroup=model, showlegend=j == 0,
                                     line={"color": colors[i % len(colors)]}), row=j // 3 + 1, col=j % 3 + 1)
    cfg = result["config"]
    fig.update_xaxes(title_text="fine-tuning step")
    fig.update_layout(template="plotly_white", height=650,
                      title=f"the base model's SAE through {cfg['steps']} steps of {cfg['task']} fine-tuning")
    return fig
