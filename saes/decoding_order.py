"""Decoding order in a masked diffusion LM, read through SAEs (CLI: `interp dlm order`).

The remasking sampler runs on task prompts once per strategy (interp/diffusion.py); every model call, and one
more on the finished sequence, is read at the chosen layers' residual streams through SAEs. Each generated
position's latents are compared between consecutive reads: while it is still masked (both reads masked) and after
it is decoded (both visible), by the Jaccard overlap of the `top` largest latents, their activation-weighted
Jaccard, the cosine of the whole latent vectors and whether the largest latent is unchanged. Also per position:
the jump at its commit (Jaccard between its last masked read and its first visible one) and its drift after it
(1 - Jaccard between its first visible read and the finished sequence's). Accuracy: the first generated tokens
are the task's answer. Whether a prompt's stability while masked predicts its accuracy is tested across prompts
(permutation test) and across strategies.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from interp.diffusion import REMASKING, sample
from interp.errors import InterpError
from interp.options import check_fields, opt

MEASURES = ("jaccard", "weighted_jaccard", "cosine", "top1_same")
PHASES = ("masked", "decoded")


@dataclass
class OrderConfig:
    model: str = opt("mdlm-mini", "a diffusion model: zoo name, local HF directory or hub id")
    sae: str | None = opt(None, "a train-sae run (or SAE directory) with SAEs at the layers' residual streams "
                                "(default: train one into OUT/sae)")
    layers: list[int] = opt(factory=list, flag="layer", help="blocks whose residual stream is read (default: all)")
    task: str = opt("add_sub", "task whose test prompts are decoded")
    n: int = opt(64, "prompts", min=1)
    strategies: list[str] = opt(factory=lambda: list(REMASKING), flag="strategy",
                                help=f"remasking strategies compared: {', '.join(REMASKING)}")
    gen_length: int = opt(8, "generated tokens per prompt (the answer is the first of them)", min=1)
    denoise_steps: int | None = opt(None, "denoising steps (default: gen-length)", min=1)
    block_length: int | None = opt(None, "semi-autoregressive block length (default: gen-length)", min=1)
    top: int = opt(8, "largest latents per position compared between reads", min=1)
    sae_tokens: int = opt(200_000, "training activations of the SAEs trained when --sae is not given", min=1)
    trajectories: int = opt(4, "prompts whose read-by-read tokens and latents are kept for the app", min=0)
    permutations: int = opt(2000, "shuffles of the permutation test", min=1)
    seed: int = opt(0, "seed of every random stream of the run", min=0)
    out: str = opt("runs/dlm-order", "run directory (order.json, order.html, sae/)")

    def steps(self) -> int:
        return self.denoise_steps or self.gen_length

    def validate(self) -> "OrderConfig":
        check_fields(self)
        block = self.block_length or self.gen_length
        if self.gen_length % block or self.steps() % (self.gen_length // block):
            raise InterpError(f"gen-length ({self.gen_length}) must be a multiple of block-length ({block}), and "
                              f"denoise-steps ({self.steps()}) of the number of blocks ({self.gen_length // block})")
        if self.steps() > self.gen_length:
            raise InterpError(f"denoise-steps ({self.steps()}) is more than gen-length ({self.gen_length}); "
                              "a step commits at least one token")
        if not self.strategies:
            raise InterpError("--strategy needs at least one value")
        if bad := [s for s in self.strategies if s not in REMASKING]:
            raise InterpError(f"unknown strategy {bad[0]!r}; the strategies are {', '.join(REMASKING)}")
        return self


# ---------------------------------------------------------------- measures between two reads


def top_mask(acts: torch.Tensor, top: int) -> torch.Tensor:
    """[..., d] bool: the `top` largest latents of each row, among those that fire."""
    idx = acts.topk(min(top, acts.shape[-1]), dim=-1).indices
    mask = torch.zeros_like(acts, dtype=torch.bool).scatter_(-1, idx, True)
    return mask & (acts > 0)


def compare(a: torch.Tensor, b: torch.Tensor, top: int) -> dict[str, torch.Tensor]:
    """The four measures between latent vectors `a` and `b` [..., d], each [...]. Two empty sets overlap fully."""
    sa, sb = top_mask(a, top), top_mask(b, top)
    union = (sa | sb).sum(-1)
    jaccard = torch.where(union > 0, (sa & sb).sum(-1) / union.clamp_min(1), torch.ones_like(union, dtype=a.dtype))
    va, vb = a * sa, b * sb
    high = torch.maximum(va, vb).sum(-1)
    weighted = torch.where(high > 0, torch.minimum(va, vb).sum(-1) / high.clamp_min(1e-30), torch.ones_like(high))
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-12)
    top1 = (a.argmax(-1) == b.argmax(-1)).to(a.dtype)
    return {"jaccard": jaccard, "weighted_jaccard": weighted, "cosine": cosine, "top1_same": top1}


# ---------------------------------------------------------------- one strategy on one batch of prompts


@torch.no_grad()
def decode_with_reads(loaded, saes: dict[str, object], prompt_ids: torch.Tensor, cfg: OrderConfig, strategy: str,
                      generator: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor], dict[str, torch.Tensor]]:
    """Run the sampler; return the finished ids [B, P + G], the input of every read (each model call's, then the
    finished sequence) and, per hook, the generated positions' latents at every read [R, B, G, d_sae]."""
    p = prompt_ids.shape[1]
    inputs, latents = [], {h: [] for h in saes}

    def read(ids):
        logits, cache = loaded.bridge.run_with_cache(ids, names_filter=list(saes))
        inputs.append(ids.clone())
        for h, sae in saes.items():
            latents[h].append(sae.encode(cache[h][:, p:].flatten(2).float()))
        return logits

    out = sample(lambda input_ids: SimpleNamespace(logits=read(input_ids)), prompt_ids, loaded.tokenizer.mask_token_id,
                 gen_length=cfg.gen_length, denoise_steps=cfg.steps(), block_length=cfg.block_length,
                 generator=generator, remasking=strategy)
    read(out)
    return out, inputs, {h: torch.stack(v) for h, v in latents.items()}


def position_stats(inputs: list[torch.Tensor], latents: torch.Tensor, mask_id: int, p: int, top: int) -> dict:
    """For one hook's latents [R, B, G, d]: per phase and measure, the per-transition sums and counts [R-1]
    (summed over positions), the per-prompt means of the masked Jaccard [B] (nan where no pair), and per position
    its commit jump and drift [B, G] (nan where not measured)."""
    masked = torch.stack([x[:, p:] == mask_id for x in inputs])  # [R, B, G]
    pairs = compare(latents[:-1], latents[1:], top)  # each [R-1, B, G]
    phase = {"masked": masked[:-1] & masked[1:], "decoded": ~masked[:-1] & ~masked[1:]}
    curves = {ph: {m: ((v * w).sum((1, 2)), w.sum((1, 2))) for m, v in pairs.items()} for ph, w in phase.items()}
    w = phase["masked"].float()
    per_prompt = (pairs["jaccard"] * w).sum((0, 2)) / w.sum((0, 2))  # nan (0/0) where no masked pair
    r = masked.shape[0]
    first_visible = (~masked).float().argmax(0)  # [B, G]: every position is visible at the last read
    b_idx, g_idx = torch.meshgrid(torch.arange(masked.shape[1]), torch.arange(masked.shape[2]), indexing="ij")
    at = lambda reads: latents[reads, b_idx, g_idx]  # [B, G, d]
    visible = at(first_visible)
    jump = compare(at((first_visible - 1).clamp_min(0)), visible, top)["jaccard"]
    jump = torch.where(first_visible > 0, jump, torch.full_like(jump, math.nan))
    drift = 1 - compare(visible, latents[-1], top)["jaccard"]
    drift = torch.where(first_visible < r - 1, drift, torch.full_like(drift, math.nan))
    return {"curves": curves, "per_prompt": per_prompt, "jump": jump, "drift": drift}


def answer_correct(tokenizer, out: torch.Tensor, p: int, labels: list) -> torch.Tensor:
    """[B] bool: the generated tokens begin with the label's answer (a range label: a year in its range)."""
    from interp.answers import answer_ids
    from interp.greater_than import Later, sampled_right

    got = []
    for row, label in zip(out[:, p:].tolist(), labels):
        want = answer_ids(tokenizer, label)
        if isinstance(label, Later):
            got.append(sampled_right(tokenizer, row[:len(want)], label))
        else:
            got.append(row[:len(want)] == want)
    return torch.tensor(got, dtype=torch.bool)


# ---------------------------------------------------------------- does stability predict accuracy?


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _permutation_p(x: np.ndarray, y: np.ndarray, groups: np.ndarray, r: float | None, rng, n: int) -> float | None:
    """Two-sided p of `r` against `y` shuffled within each group (so a group's accuracy is kept)."""
    if r is None:
        return None
    hits = 0
    for _ in range(n):
        y2 = y.copy()
        for g in np.unique(groups):
            idx = np.flatnonzero(groups == g)
            y2[idx] = y[rng.permutation(idx)]
        hits += abs(_pearson(x, y2) or 0.0) >= abs(r) - 1e-12
    return (hits + 1) / (n + 1)


def _ranks(v: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank (Spearman's)."""
    return np.array([(v < x).sum() + ((v == x).sum() + 1) / 2 for x in v])


def _centred(v: np.ndarray, groups: np.ndarray) -> np.ndarray:
    out = v.astype(float).copy()
    for g in np.unique(groups):
        out[groups == g] -= out[groups == g].mean()
    return out


def predictiveness(stability: np.ndarray, correct: np.ndarray, strategy: np.ndarray, rng, permutations: int) -> dict:
    """Whether a prompt's mean Jaccard while masked predicts that its answer is right: pooled over strategies and
    prompts, within strategies (both centred by strategy), and across strategies (Spearman of the means)."""
    keep = ~np.isnan(stability)
    x, y, g = stability[keep], correct[keep].astype(float), strategy[keep]
    pooled = _pearson(x, y)
    within = _pearson(_centred(x, g), _centred(y, g))
    names = list(dict.fromkeys(g.tolist()))
    means = [(float(x[g == s].mean()), float(y[g == s].mean())) for s in names]
    across = None
    if len(names) >= 3:
        across = _pearson(_ranks(np.array([m[0] for m in means])), _ranks(np.array([m[1] for m in means])))
    return {"pairs": int(keep.sum()), "pooled_r": pooled,
            "pooled_p": _permutation_p(x, y, np.zeros_like(g), pooled, rng, permutations),
            "within_r": within,
            "within_p": _permutation_p(_centred(x, g), y, g, within, rng, permutations),
            "across_spearman": across, "strategy_means": dict(zip(names, means))}


def verdict(pred: dict, accuracy: dict[str, float]) -> str:
    """One sentence on what the test found."""
    if all(a in (0.0, 1.0) and a == next(iter(accuracy.values())) for a in accuracy.values()):
        return (f"cannot be told: every answer is {'right' if next(iter(accuracy.values())) else 'wrong'} under every "
                "strategy, so accuracy has nothing to predict")
    parts = []
    for key, what in (("pooled", "across prompts and strategies"), ("within", "across prompts within a strategy")):
        r, p = pred[f"{key}_r"], pred[f"{key}_p"]
        if r is None:
            parts.append(f"{what}: no variance to correlate")
        else:
            parts.append(f"{what}: r = {r:+.3f}, permutation p = {p:.3g} "
                         f"({'a predictor at p < 0.05' if p < 0.05 else 'no evidence it predicts'})")
    if pred["across_spearman"] is not None:
        parts.append(f"across the {len(accuracy)} strategies' means: Spearman {pred['across_spearman']:+.2f} "
                     "(too few points for a test)")
    return "; ".join(parts)


# ---------------------------------------------------------------- the whole analysis


def _saes(cfg: OrderConfig, hooks: list[str], out: Path, loaded) -> tuple[dict, str]:
    """{hook: SAE} from --sae, or from a run trained (or reused) at OUT/sae; and where they came from."""
    from .config import SAETrainConfig
    from .run_eval import sae_dirs
    from .train import load_sae, train_sae

    where = Path(cfg.sae) if cfg.sae else out / "sae"
    if not cfg.sae and not (where / "metrics.json").exists():
        train_sae(SAETrainConfig(model=cfg.model, hooks=hooks, tokens=cfg.sae_tokens, out=str(where), seed=cfg.seed),
                  resume=where.with_name(where.name + ".partial").exists())
    found = {}
    for name, d in sae_dirs(where).items():
        sae = load_sae(d)
        found.setdefault(sae.cfg.metadata.hook_name, sae)  # several k at one hook: the first by name
    missing = [h for h in hooks if h not in found]
    if missing:
        raise InterpError(f"the SAEs at {where} read {', '.join(sorted(found)) or 'no hook'}, not "
                          f"{', '.join(missing)}; pass --layer for those it has, or another --sae / --out")
    d_model = loaded.model.config.hidden_size
    for h in hooks:
        if found[h].cfg.d_in != d_model:
            raise InterpError(f"the SAE at {h} reads {found[h].cfg.d_in} dimensions; {cfg.model}'s residual "
                              f"stream has {d_model}")
    return {h: found[h] for h in hooks}, str(where)


def _tokens(tokenizer, ids: list[int], mask_id: int) -> list[str]:
    return ["▢" if t == mask_id else tokenizer.decode([t]) for t in ids]


def _trajectory(tokenizer, inputs, latents, b: int, p: int, top: int, mask_id: int) -> dict:
    """Read by read, one prompt's generated tokens and each position's largest latents at every hook."""
    reads = []
    for r, x in enumerate(inputs):
        entry = {"tokens": _tokens(tokenizer, x[b, p:].tolist(), mask_id), "latents": {}}
        for h, acts in latents.items():
            vals, idx = acts[r, b].topk(min(top, acts.shape[-1]), dim=-1)
            entry["latents"][h] = [[[int(i), round(float(v), 3)] for i, v in zip(ii, vv) if v > 0]
                                   for ii, vv in zip(idx.tolist(), vals.tolist())]
        reads.append(entry)
    return {"reads": reads}


def decoding_order(cfg: OrderConfig, show_progress: bool = True) -> dict:
    """Run the analysis (module docstring); write OUT/order.json and OUT/order.html; return the result."""
    from tqdm.auto import tqdm

    from interp.loading import load_model
    from interp.rundir import RunDir
    from interp.seeds import numpy_generator, torch_generator
    from interp.tasks import make_examples

    cfg.validate()
    loaded = load_model(cfg.model)
    if not loaded.is_diffusion:
        raise InterpError(f"{cfg.model} is an autoregressive model; decoding order needs a masked diffusion model "
                          "(e.g. mdlm-mini)")
    loaded.require_head("the sampler")
    n_layers = len(loaded.bridge.blocks)
    if bad := [l for l in cfg.layers if not 0 <= l < n_layers]:
        raise InterpError(f"layer {bad[0]} does not exist; {cfg.model} has layers 0..{n_layers - 1}")
    layers = cfg.layers or list(range(n_layers))
    hooks = [f"blocks.{l}.hook_resid_post" for l in layers]
    examples = make_examples(cfg.task, "test", cfg.n, cfg.seed, at_most=True, tokenizer=loaded.tokenizer)
    tok, mask_id = loaded.tokenizer, loaded.tokenizer.mask_token_id
    prompt_ids = tok([e.clean for e in examples])["input_ids"]
    from .steering import n_ctx

    if (longest := max(map(len, prompt_ids))) + cfg.gen_length > n_ctx(loaded):
        raise InterpError(f"a prompt of {longest} tokens and {cfg.gen_length} generated ones overrun "
                          f"{cfg.model}'s context of {n_ctx(loaded)} tokens; lower --gen-length")
    run = RunDir(cfg.out, "dlm-order", atomic=False)  # holds the SAE run it trains and the results
    run.check(resume=True, reuse_finished=True)
    with run.writing(resume=True, reuse_finished=True) as out:
        saes, sae_source = _saes(cfg, hooks, out, loaded)
        groups: dict[int, list[int]] = {}
        for i, ids in enumerate(prompt_ids):
            groups.setdefault(len(ids), []).append(i)
        result = {"config": asdict(cfg), "layers": layers, "hooks": hooks, "sae": sae_source,
                  "prompts": [e.clean for e in examples], "labels": [str(e.label) for e in examples],
                  "strategies": {}}
        rows = []  # (strategy, prompt, stability, correct)
        bar = tqdm(total=len(cfg.strategies) * len(examples), desc="decoding order", unit="prompt",
                   disable=not show_progress)
        for si, strategy in enumerate(cfg.strategies):
            gen = torch_generator(cfg.seed, "dlm-order/remasking", si)
            sums = {h: None for h in hooks}
            jumps, drifts = {h: [] for h in hooks}, {h: [] for h in hooks}
            stability = np.full(len(examples), np.nan)
            correct = np.zeros(len(examples), dtype=bool)
            generated, trajectories = [""] * len(examples), {}
            for p, idx in groups.items():
                ids = torch.tensor([prompt_ids[i] for i in idx])
                outs, inputs, latents = decode_with_reads(loaded, saes, ids, cfg, strategy, gen)
                correct[idx] = answer_correct(tok, outs, p, [examples[i].label for i in idx]).numpy()
                per_hook = [position_stats(inputs, latents[h], mask_id, p, cfg.top) for h in hooks]
                for h, st in zip(hooks, per_hook):
                    sums[h] = _add(sums[h], st["curves"])
                    jumps[h].append(st["jump"].flatten())
                    drifts[h].append(st["drift"].flatten())
                stability[idx] = _nanmean(torch.stack([st["per_prompt"] for st in per_hook]).numpy())
                for j, i in enumerate(idx):
                    generated[i] = tok.decode(outs[j, p:].tolist())
                    if i < cfg.trajectories:
                        trajectories[str(i)] = _trajectory(tok, inputs, latents, j, p, cfg.top, mask_id)
                bar.update(len(idx))
            rows += [(strategy, i, stability[i], correct[i]) for i in range(len(examples))]
            result["strategies"][strategy] = {
                "accuracy": float(correct.mean()), "correct": correct.tolist(), "generated": generated,
                "stability": [None if np.isnan(s) else float(s) for s in stability],
                "layers": {h: _summary(sums[h], torch.cat(jumps[h]), torch.cat(drifts[h])) for h in hooks},
                "trajectories": trajectories}
        bar.close()
        strategy = np.array([r[0] for r in rows])
        pred = predictiveness(np.array([r[2] for r in rows]), np.array([r[3] for r in rows]), strategy,
                              numpy_generator(cfg.seed, "dlm-order/permutation"), cfg.permutations)
        accuracy = {s: v["accuracy"] for s, v in result["strategies"].items()}
        result["prediction"] = dict(pred, verdict=verdict(pred, accuracy))
        write_results(result, out)
    return result


def _nanmean(a: np.ndarray) -> np.ndarray:
    """Column means over the values that are not nan; nan where a column has none."""
    ok = ~np.isnan(a)
    n = ok.sum(0)
    return np.where(n > 0, np.where(ok, a, 0).sum(0) / np.maximum(n, 1), np.nan)


def _add(acc, curves):
    if acc is None:
        return {ph: {m: [s.clone(), c.clone()] for m, (s, c) in ms.items()} for ph, ms in curves.items()}
    for ph, ms in curves.items():
        for m, (s, c) in ms.items():
            acc[ph][m][0] += s
            acc[ph][m][1] += c
    return acc


def _summary(sums: dict, jump: torch.Tensor, drift: torch.Tensor) -> dict:
    """Per phase and measure the curve over transitions (None where no position was in that phase) and the mean;
    the mean commit jump and drift."""
    mean = lambda v: None if torch.isnan(v).all() else float(v.nanmean())
    out = {}
    for ph, ms in sums.items():
        out[ph] = {m: {"curve": [None if c == 0 else float(s_ / c) for s_, c in zip(s.tolist(), cnt.tolist())],
                       "mean": None if cnt.sum() == 0 else float(s.sum() / cnt.sum())}
                   for m, (s, cnt) in ms.items()}
    out["commit_jaccard"] = mean(jump)
    out["drift"] = mean(drift)
    return out


# ---------------------------------------------------------------- what is written


def _over_layers(result: dict, strategy: str, get) -> float | None:
    vals = [v for h in result["hooks"] if (v := get(result["strategies"][strategy]["layers"][h])) is not None]
    return sum(vals) / len(vals) if vals else None


def markdown_table(result: dict) -> str:
    """One row per strategy, averaged over the layers: accuracy, the four measures while masked, the Jaccard
    after decoding, at the commit and the drift; then the masked Jaccard per layer."""
    cell = lambda v, f=".3f": "–" if v is None else format(v, f)
    head = ["strategy", "accuracy %"] + [f"masked {m}" for m in MEASURES] + ["decoded jaccard", "commit jaccard",
                                                                            "drift"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for s, v in result["strategies"].items():
        cells = [s, f"{100 * v['accuracy']:.1f}"]
        cells += [cell(_over_layers(result, s, lambda L, m=m: L["masked"][m]["mean"])) for m in MEASURES]
        cells += [cell(_over_layers(result, s, lambda L: L["decoded"]["jaccard"]["mean"])),
                  cell(_over_layers(result, s, lambda L: L["commit_jaccard"])),
                  cell(_over_layers(result, s, lambda L: L["drift"]))]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| strategy | " + " | ".join(f"layer {l} masked jaccard" for l in result["layers"]) + " |",
              "|---" * (1 + len(result["layers"])) + "|"]
    for s, v in result["strategies"].items():
        lines.append(f"| {s} | " + " | ".join(cell(v["layers"][h]["masked"]["jaccard"]["mean"])
                                               for h in result["hooks"]) + " |")
    return "\n".join(lines) + "\n"


def order_figure(result: dict):
    """Per measure (rows) and phase (columns), each strategy's mean over the layers, transition by transition."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=len(MEASURES), cols=len(PHASES), shared_xaxes=True, vertical_spacing=0.05,
                        column_titles=["while masked" if ph == "masked" else "after decoding" for ph in PHASES],
                        row_titles=[m.replace("_", " ") for m in MEASURES])
    colors = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#e53e3e", "#718096"]
    for si, (s, v) in enumerate(result["strategies"].items()):
        for r, m in enumerate(MEASURES):
            for c, ph in enumerate(PHASES):
                curves = [v["layers"][h][ph][m]["curve"] for h in result["hooks"]]
                ys = []
                for t in range(len(curves[0])):
                    vals = [cv[t] for cv in curves if cv[t] is not None]
                    ys.append(sum(vals) / len(vals) if vals else None)
                fig.add_trace(go.Scatter(x=list(range(1, len(ys) + 1)), y=ys, mode="lines+markers", name=s,
                                         legendgroup=s, showlegend=r == 0 and c == 0,
                                         line={"color": colors[si % len(colors)]}), row=r + 1, col=c + 1)
    cfg = result["config"]
    fig.update_xaxes(title_text="denoising step (read t-1 to read t)", row=len(MEASURES))
    fig.update_layout(template="plotly_white", height=260 * len(MEASURES), hovermode="x unified",
                      title=f"{cfg['model']} · {cfg['task']} · {cfg['gen_length']} tokens in {cfg['denoise_steps'] or cfg['gen_length']} "
                            f"steps · SAE latents between consecutive reads (mean over layers {result['layers']})")
    return fig


def write_results(result: dict, out: Path) -> None:
    from interp.rundir import write_atomic

    write_atomic(out / "order.json", json.dumps(result, indent=1))
    write_atomic(out / "order.md", markdown_table(result) + "\n" + result["prediction"]["verdict"] + "\n")
    tmp = out / "order.html.tmp"
    order_figure(result).write_html(tmp, include_plotlyjs="directory")
    tmp.replace(out / "order.html")
