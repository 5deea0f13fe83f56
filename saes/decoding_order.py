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
    batch_size: int = opt(16, "prompts decoded together", min=1)
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


class Tracker:
    """One hook's measures over one batch, fed read by read: it holds three reads' latents (the previous read, and
    each position's first visible one), however many steps the sampler takes."""

    def __init__(self, top: int, transitions: int):
        self.top, self.reads = top, 0
        self.sums = {ph: {m: (torch.zeros(transitions), torch.zeros(transitions)) for m in MEASURES} for ph in PHASES}

    def add(self, acts: torch.Tensor, masked: torch.Tensor) -> None:
        """The generated positions' latents [B, G, d] at the next read, and which of them are masked [B, G]."""
        if self.reads == 0:
            self.first = torch.zeros_like(acts)  # each position's latents at its first visible read
            self.first_at = torch.full(masked.shape, -1)
            self.jump = torch.full(masked.shape, math.nan)
            self.prompt_sum, self.prompt_n = torch.zeros(masked.shape[0]), torch.zeros(masked.shape[0])
        else:
            pairs = compare(self.prev, acts, self.top)
            phase = {"masked": self.prev_masked & masked, "decoded": ~self.prev_masked & ~masked}
            for ph, w in phase.items():
                for m, v in pairs.items():
                    self.sums[ph][m][0][self.reads - 1] += (v * w).sum()
                    self.sums[ph][m][1][self.reads - 1] += w.sum()
            self.prompt_sum += (pairs["jaccard"] * phase["masked"]).sum(1)
            self.prompt_n += phase["masked"].sum(1)
            committed = self.prev_masked & ~masked
            self.jump[committed] = pairs["jaccard"][committed]
        newly = ~masked & (self.first_at < 0)
        self.first[newly], self.first_at[newly] = acts[newly], self.reads
        self.prev, self.prev_masked = acts, masked
        self.reads += 1

    def result(self) -> dict:
        """Per phase and measure the per-transition sums and counts (summed over positions), the per-prompt mean
        of the masked Jaccard [B] (nan where no pair), and per position the commit jump and drift [B, G] (nan
        where not measured: drift needs a visible read before the last)."""
        drift = 1 - compare(self.first, self.prev, self.top)["jaccard"]
        drift = torch.where(self.first_at < self.reads - 1, drift, torch.full_like(drift, math.nan))
        return {"curves": self.sums, "per_prompt": self.prompt_sum / self.prompt_n, "jump": self.jump,
                "drift": drift}


def position_stats(inputs: list[torch.Tensor], latents: torch.Tensor, mask_id: int, p: int, top: int) -> dict:
    """`Tracker.result` for one hook's latents at every read [R, B, G, d] and the reads' inputs."""
    tracker = Tracker(top, len(inputs) - 1)
    for x, acts in zip(inputs, latents):
        tracker.add(acts, x[:, p:] == mask_id)
    return tracker.result()


def _top_latents(acts: torch.Tensor, top: int) -> list:
    vals, idx = acts.topk(min(top, acts.shape[-1]), dim=-1)
    return [[[int(i), round(float(v), 3)] for i, v in zip(ii, vv) if v > 0]
            for ii, vv in zip(idx.tolist(), vals.tolist())]


@torch.no_grad()
def decode_with_reads(loaded, saes: dict[str, object], prompt_ids: torch.Tensor, cfg: OrderConfig, strategy: str,
                      generator: torch.Generator, keep: tuple[int, ...] = ()) -> tuple[torch.Tensor, dict, dict]:
    """Run the sampler, reading each model call (and the finished sequence) through the SAEs. Returns the finished
    ids [B, P + G], each hook's `Tracker.result`, and for the rows in `keep` their trajectories: read by read,
    the generated tokens and each position's largest latents at every hook."""
    p, mask_id = prompt_ids.shape[1], loaded.tokenizer.mask_token_id
    trackers = {h: Tracker(cfg.top, cfg.steps()) for h in saes}
    trajectories = {j: [] for j in keep}

    def read(ids):
        logits, cache = loaded.bridge.run_with_cache(ids, names_filter=list(saes))
        masked = ids[:, p:] == mask_id
        acts = {h: sae.encode(cache[h][:, p:].flatten(2).float()) for h, sae in saes.items()}
        for h, a in acts.items():
            trackers[h].add(a, masked)
        for j in keep:
            trajectories[j].append({"tokens": _tokens(loaded.tokenizer, ids[j, p:].tolist(), mask_id),
                                    "latents": {h: _top_latents(a[j], cfg.top) for h, a in acts.items()}})
        return logits

    out = sample(lambda input_ids: SimpleNamespace(logits=read(input_ids)), prompt_ids, mask_id,
                 gen_length=cfg.gen_length, denoise_steps=cfg.steps(), block_length=cfg.block_length,
                 generator=generator, remasking=strategy)
    read(out)
    return out, {h: t.result() for h, t in trackers.items()}, {j: {"reads": r} for j, r in trajectories.items()}


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


def _saes(cfg: OrderConfig, hooks: list[str], out: Path, loaded, resume: bool) -> tuple[dict, str]:
    """{hook: SAE} from --sae, or from a run trained (or reused) at OUT/sae; and where they came from."""
    from .config import SAETrainConfig
    from .run_eval import sae_dirs
    from .train import load_sae, train_sae

    where = Path(cfg.sae) if cfg.sae else out / "sae"
    if not cfg.sae and not (where / "metrics.json").exists():
        train_sae(SAETrainConfig(model=cfg.model, hooks=hooks, tokens=cfg.sae_tokens, out=str(where), seed=cfg.seed),
                  resume=resume)
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


def _check_memory(cfg: OrderConfig, saes: dict) -> None:
    """Refuse a batch whose latents (three reads' worth per hook: the current, the previous and the first
    visible) would take more than half of this machine's memory."""
    import os

    need = 3 * 4 * cfg.batch_size * cfg.gen_length * sum(sae.cfg.d_sae for sae in saes.values())
    have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if need > have / 2:
        raise InterpError(f"reading {len(saes)} layers' latents for {cfg.batch_size} prompts x {cfg.gen_length} "
                          f"tokens needs {need / 2**30:.1f} GiB at once, more than half of this machine's "
                          f"{have / 2**30:.0f} GiB; lower --batch-size or read fewer --layer")


def _tokens(tokenizer, ids: list[int], mask_id: int) -> list[str]:
    return ["▢" if t == mask_id else tokenizer.decode([t]) for t in ids]


def decoding_order(cfg: OrderConfig, resume: bool = False, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Run the analysis (module docstring); write OUT/order.json, order.md and order.html; return the result.
    A finished run directory is reused (its SAEs kept, its results written again); a stopped one needs `resume`,
    or `overwrite` to start again."""
    from tqdm.auto import tqdm

    from interp.loading import load_model
    from interp.rundir import RunDir
    from interp.seeds import numpy_generator, torch_generator
    from interp.tasks import make_examples

    from .steering import n_ctx

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
    tok = loaded.tokenizer
    prompt_ids = tok([e.clean for e in examples])["input_ids"]
    if (longest := max(map(len, prompt_ids))) + cfg.gen_length > n_ctx(loaded):
        raise InterpError(f"a prompt of {longest} tokens and {cfg.gen_length} generated ones overrun "
                          f"{cfg.model}'s context of {n_ctx(loaded)} tokens; lower --gen-length")
    run = RunDir(cfg.out, "dlm-order", atomic=False)  # holds the SAE run it trains and the results
    run.check(resume=resume, overwrite=overwrite, reuse_finished=True)
    with run.writing(resume=resume, overwrite=overwrite, reuse_finished=True) as out:
        saes, sae_source = _saes(cfg, hooks, out, loaded, resume)
        _check_memory(cfg, saes)
        groups: dict[int, list[int]] = {}
        for i, ids in enumerate(prompt_ids):  # a diffusion batch is one length (bidirectional attention: no padding)
            groups.setdefault(len(ids), []).append(i)
        batches = [(p, idx[s:s + cfg.batch_size]) for p, idx in groups.items()
                   for s in range(0, len(idx), cfg.batch_size)]
        result = {"config": asdict(cfg), "layers": layers, "hooks": hooks, "sae": sae_source,
                  "prompts": [e.clean for e in examples], "labels": [str(e.label) for e in examples],
                  "strategies": {}}
        strategy, stability, correct = [], [], []  # per (strategy, prompt), for the permutation test
        bar = tqdm(total=len(cfg.strategies) * len(examples), desc="decoding order", unit="prompt",
                   disable=not show_progress)
        for si, name in enumerate(cfg.strategies):
            gen = torch_generator(cfg.seed, "dlm-order/remasking", si)
            one = _decode_all(loaded, saes, cfg, name, gen, examples, prompt_ids, batches, hooks, bar)
            result["strategies"][name] = one
            strategy += [name] * len(examples)
            stability += one["stability"]
            correct += one["correct"]
        bar.close()
        pred = predictiveness(np.array(stability, dtype=float), np.array(correct), np.array(strategy),
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
                      title=f"{cfg['model']} · {cfg['task']} · {cfg['gen_length']} tokens in "
                            f"{cfg['denoise_steps'] or cfg['gen_length']} "
                            f"steps · SAE latents between consecutive reads (mean over layers {result['layers']})")
    return fig


def write_results(result: dict, out: Path) -> None:
    from interp.rundir import write_atomic

    write_atomic(out / "order.json", json.dumps(result, indent=1))
    write_atomic(out / "order.md", markdown_table(result) + "\n" + result["prediction"]["verdict"] + "\n")
    tmp = out / "order.html.tmp"
    order_figure(result).write_html(tmp, include_plotlyjs="directory")
    tmp.replace(out / "order.html")


def _decode_all(loaded, saes, cfg: OrderConfig, strategy: str, gen, examples, prompt_ids, batches, hooks, bar) -> dict:
    """One strategy over every prompt batch: accuracy, generations, per-prompt stability, per-layer curves and the
    kept trajectories."""
    tok = loaded.tokenizer
    sums = {h: None for h in hooks}
    jumps, drifts = {h: [] for h in hooks}, {h: [] for h in hooks}
    stability = np.full(len(examples), np.nan)
    correct = np.zeros(len(examples), dtype=bool)
    generated, trajectories = [""] * len(examples), {}
    for p, idx in batches:
        ids = torch.tensor([prompt_ids[i] for i in idx])
        keep = tuple(j for j, i in enumerate(idx) if i < cfg.trajectories)
        outs, stats, kept = decode_with_reads(loaded, saes, ids, cfg, strategy, gen, keep)
        correct[idx] = answer_correct(tok, outs, p, [examples[i].label for i in idx]).numpy()
        for h, st in stats.items():
            sums[h] = _add(sums[h], st["curves"])
            jumps[h].append(st["jump"].flatten())
            drifts[h].append(st["drift"].flatten())
        stability[idx] = _nanmean(torch.stack([st["per_prompt"] for st in stats.values()]).numpy())
        for j, i in enumerate(idx):
            generated[i] = tok.decode(outs[j, p:].tolist())
        trajectories.update({str(idx[j]): t for j, t in kept.items()})
        bar.update(len(idx))
    return {"accuracy": float(correct.mean()), "correct": correct.tolist(), "generated": generated,
            "stability": [None if np.isnan(s) else float(s) for s in stability],
            "layers": {h: _summary(sums[h], torch.cat(jumps[h]), torch.cat(drifts[h])) for h in hooks},
            "trajectories": trajectories}
