"""`unlearn(config)`: SSPU end to end against RMU, SAE clamping and gradient ascent, with attacks (docs/methods.md §3).

Setting: forget one task family (default mul_div), retain the others and the base corpus, on a model good at
both (default: pythia-mini fine-tuned on the five task families, made once with the fine-tuning loop and
cached under runs/unlearn/). SAEs on the candidate layers' residual streams come from `--sae RUN` or are
trained once with `train_sae` and cached.

Run directory (written as `<out>.partial`, renamed when complete; interp/rundir.py):
    interp-run.json  config.json  selection.json (layer, layer scores, forget and irrelevant features with top contexts)
    bases.safetensors (relevant, irrelevant, u)  model/ (the SSPU model, save_pretrained)  report.json  report.md
    trained/<method>.safetensors (the trained parameters)  rows/<method>.json (its metrics)
A stopped run resumes from `<out>.partial` when rerun with the same options.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from interp.errors import InterpError, check_number
from interp.rundir import config_changes, write_atomic

RETAIN = "add_sub,sequence,lcm,function"
TUNED = Path("runs/unlearn/pythia-mini-tasks")
SAE_LAYERS = (1, 2, 3)  # the cached SAE run's layers; the update's candidates are those with l >= 2


@dataclass
class UnlearnConfig:
    model: str | None = None  # None: pythia-mini fine-tuned on every task family (cached at runs/unlearn/)
    forget: str = "mul_div"
    retain: str = RETAIN
    sae: str | None = None  # an SAE run with resid_post SAEs of this model; None: train one (cached)
    layer: int | None = None  # None: chosen from data among the SAE run's layers >= 2 (all if none is)
    features: int = 48
    irrelevant: str = "score"  # irrelevant latents: "score" (smallest |score|) or "quiet" (least active)
    steering_coef: float = 1.0  # c = coef x mean norm of the layer's activations on forget prompts
    control_draws: int = 8  # of that many random u, the one whose half-way push removes most of the answers
    retain_weight: float = 120.0
    reg_weight: float = 10.0  # the subspace penalty; its proximal step shrinks the outside part by 1 + lr x this
    target: str = "control"  # SSPU's forget push: "control" (toward c*u), "erase" (relevant part to 0), "control+erase"
    params: str = "mlp_out"  # module suffixes in layers l-2..l; mlp_out: the family's MLP output projection
    push_at: str = "distinct"  # forget positions pushed: "distinct" (prefix in no retain prompt) or "all"
    push_weight: str = "known"  # each forget prompt's push by p(answer) + 0.1 (SSPU and RMU); or "uniform"
    forget_text: str = "prompts+words"  # also unlearn on two of the corpus's word forms (mul_div only); or "prompts"
    steps: int = 2400
    lr: float = 2e-3
    clamp: float = 1.0
    batch_size: int = 32
    n_eval: int = 1000  # test prompts per task, at most: every task's whole test split (210 to 1000 prompts)
    probe_examples: int = 1000
    relearn_examples: int = 10
    relearn_steps: int = 20
    # The attacker's learning rates; relearning reports the best. One fixed rate misjudges the attack: 5e-4 takes
    # the original model from 88 to 52-58, damaging more than it restores.
    relearn_lrs: str = "1e-5,3e-5,1e-4,3e-4,1e-3"
    relearn_draws: int = 1  # independent draws of the relearning examples, averaged at each rate
    seed: int = 0
    out: str = "runs/unlearn/run"

    def forget_tasks(self) -> list[str]:
        return [t.strip() for t in self.forget.split(",") if t.strip()]

    def retain_tasks(self) -> list[str]:
        return [t.strip() for t in self.retain.split(",") if t.strip()]

    def relearn_rates(self) -> list[float]:
        try:
            rates = [float(x) for x in self.relearn_lrs.split(",") if x.strip()]
        except ValueError:
            raise InterpError(f"--relearn-lrs takes comma-separated numbers, got {self.relearn_lrs!r}") from None
        if not rates or not all(0 < r < float("inf") for r in rates):  # false for nan too
            raise InterpError("--relearn-lrs needs at least one rate, every rate > 0")
        return rates

    def validate(self) -> None:
        from interp.tasks import trainable

        forget, retain = self.forget_tasks(), self.retain_tasks()
        if not forget or not retain:
            raise InterpError("the forget and the retain domain must each name at least one task")
        if len(forget) != 1:
            raise InterpError(f"--forget takes one task family, got {', '.join(forget)}")
        for t in forget + retain:
            trainable(t)
        if overlap := set(forget) & set(retain):
            raise InterpError(f"forget and retain overlap in {', '.join(sorted(overlap))}")
        if self.features < 1:
            raise InterpError("--features must be >= 1")
        if self.irrelevant not in ("score", "quiet"):
            raise InterpError(f"--irrelevant must be score or quiet, got {self.irrelevant!r}")
        if self.target not in ("control", "erase", "control+erase"):
            raise InterpError(f"--target must be control, erase or control+erase, got {self.target!r}")
        if self.push_at not in ("distinct", "all"):
            raise InterpError(f"--push-at must be distinct or all, got {self.push_at!r}")
        if self.push_weight not in ("uniform", "known"):
            raise InterpError(f"--push-weight must be uniform or known, got {self.push_weight!r}")
        if self.forget_text not in ("prompts", "prompts+words"):
            raise InterpError(f"--forget-text must be prompts or prompts+words, got {self.forget_text!r}")
        if self.forget_text == "prompts+words" and forget != ["mul_div"]:
            raise InterpError("--forget-text prompts+words needs --forget mul_div, the family the corpus words")
        if self.steps < 1:
            raise InterpError(f"--steps must be >= 1, got {self.steps}")
        check_number("--lr", self.lr)
        check_number("--steering-coef", self.steering_coef)
        for name in ("retain_weight", "reg_weight", "clamp"):  # 0 switches a term off (the reg 0 ablation)
            check_number(f"--{name.replace('_', '-')}", getattr(self, name), inclusive=True)
        if self.n_eval < 1:
            raise InterpError("--n-eval must be >= 1")
        if self.relearn_draws < 1:
            raise InterpError("--relearn-draws must be >= 1")
        if self.control_draws < 1:
            raise InterpError("--control-draws must be >= 1")
        self.relearn_rates()


def tuned_model(path: Path = TUNED) -> str:
    """The default model: pythia-mini fully fine-tuned on all five task families (1500 steps), made once."""
    from interp.finetune import FinetuneConfig, finetune

    final = path / "checkpoints" / "step-1500"
    if not (final / "config.json").exists():
        finetune(FinetuneConfig(task="add_sub,mul_div,sequence,lcm,function", steps=1500, eval_every=500,
                                checkpoint_every=500, out=str(path)))
    return str(final)


def sae_run(cfg: UnlearnConfig, model: str) -> Path:
    """The SAE run: `--sae`, or one trained on the candidate layers and cached beside the model."""
    from .config import SAETrainConfig
    from .train import train_sae

    if cfg.sae:
        return check_sae_run(Path(cfg.sae))
    run = Path(model).parent.parent / "sae" if Path(model).parent.name == "checkpoints" else Path("runs/unlearn/sae")
    if not (run / "metrics.json").exists():
        train_sae(SAETrainConfig(model=model, hooks=[f"blocks.{l}.hook_resid_post" for l in SAE_LAYERS], k=[32],
                                 tokens=500_000, feature_tokens=32_768, eval_tokens=16_384, out=str(run)),
                  resume=(run.with_name(run.name + ".partial")).exists())
    return run


def check_sae_run(run: Path) -> Path:
    """`run` if it is a train-sae run directory (config.json and saes/); one clear line otherwise."""
    if not (run / "config.json").is_file() or not (run / "saes").is_dir():
        raise InterpError(f"--sae {run} is not a train-sae run directory (it needs config.json and saes/)")
    return run


def load_saes(run: Path, model: str) -> dict[int, tuple[str, object, Path]]:
    """layer -> (hook, SAE, its directory) for the resid_post SAEs of `run`, checked to belong to `model`."""
    import re

    from .train import load_sae

    trained_on = json.loads((run / "config.json").read_text()).get("model")
    if Path(str(trained_on)).resolve() != Path(model).resolve() and trained_on != model:
        raise InterpError(f"the SAE run {run} was trained on {trained_on}, not on {model}")
    saes = {}
    for d in sorted((run / "saes").glob("*")):
        sae = load_sae(d)
        hook = sae.cfg.metadata.hook_name
        m = re.fullmatch(r"blocks\.(\d+)\.hook_resid_post", hook)
        if not m:
            raise InterpError(f"{d} is an SAE of {hook}; unlearning needs blocks.L.hook_resid_post SAEs")
        saes[int(m.group(1))] = (hook, sae, d)
    if not saes:
        raise InterpError(f"no SAEs in {run / 'saes'}")
    return saes


def _batches(tok, cfg: UnlearnConfig):
    from interp.corpus import packed_corpus_batch
    from interp.finetune import encode_train
    from interp.tasks import make_examples

    from .unlearn_eval import TRAIN_WORDS, reword
    from .unlearn_methods import Batches, distinct_positions

    examples = lambda t: make_examples(t, "train", 2000, cfg.seed, at_most=True)
    forget = encode_train(tok, examples(cfg.forget_tasks()[0]), False)
    retain = [encode_train(tok, examples(t), False) for t in cfg.retain_tasks()]
    mask = lambda ids: distinct_positions(ids, [r[0] for r in retain]) if cfg.push_at == "distinct" else None
    words = []
    if cfg.forget_text == "prompts+words":  # one group per form: a group's prompts share a token length
        worded = [reword(e, TRAIN_WORDS) for e in examples(cfg.forget_tasks()[0])]
        for form in ("times", "quotient"):
            ids, targets = encode_train(tok, [e for e in worded if form in e.clean], False)
            # "distinct": from the operation word on, as for the prompts ("30 * ..."): a number at the start
            # is how add_sub, sequence and corpus text start too
            op = (ids == tok.convert_tokens_to_ids(form)).int().argmax(1, keepdim=True)
            pushed = (torch.arange(ids.shape[1]) >= op) & mask(ids) if cfg.push_at == "distinct" else None
            words.append((ids, targets, pushed))
    corpus = packed_corpus_batch(tok, 256, 32, f"unlearn-train-{cfg.seed}")
    return Batches(forget, retain, corpus, mask(forget[0]), words)


def _selection_json(sel, sae_dir: Path) -> dict:
    from .feature_store import FeatureStore

    store = FeatureStore(sae_dir)
    feat = lambda j: {"latent": j, "score": sel.scores[j].item(), "top": (store.latent(j) or {}).get("top", [])[:4]}
    return {"hook": sel.hook, "layer": sel.layer, "layer_scores": sel.layer_scores,
            "forget_features": [feat(j) for j in sel.forget], "irrelevant_features": [feat(j) for j in sel.irrelevant]}


# What an option added later was for runs saved before it: its default then, where the default has moved since.
ADDED_AS = {"forget_text": "prompts", "control_draws": 1}


def same_options(saved: dict, cfg: UnlearnConfig) -> bool:
    """Whether a saved config is `cfg`; an option added since it was saved counts as what it was when added."""
    return not config_changes(saved, asdict(cfg), asdict(UnlearnConfig()) | ADDED_AS)


def _trained(method: str, base, work: Path, names: list[str], train, bar):
    """The method's model: loaded from `work/trained/` when a stopped run already trained it."""
    import copy

    from safetensors.torch import load_file, save_file

    from interp.rundir import replacing

    path = work / "trained" / f"{method}.safetensors"
    if path.exists():
        model = copy.deepcopy(base)
        model.load_state_dict(load_file(str(path)), strict=False)
        bar.update(bar.total // 3)
        return model
    model = train(method)
    path.parent.mkdir(exist_ok=True)
    params = dict(model.named_parameters())
    with replacing(path) as tmp:
        save_file({n: params[n].detach().contiguous() for n in names}, str(tmp))
    return model


@dataclass
class Setup:
    """Everything stages 1 and 2 produce, and what the update needs: shared by `unlearn` and the sweep."""
    model_name: str
    base: object  # the frozen HF model
    tok: object
    data: object  # unlearn_methods.Batches
    sel: object  # unlearn_select.Selection
    sae: object
    sae_dir: Path
    relevant: torch.Tensor
    irrelevant: torch.Tensor
    names: list[str]  # the parameters the update may change
    coef: float  # c
    u: dict  # method -> control vector

    def train(self, method: str, cfg: UnlearnConfig, progress=None):
        from . import unlearn_methods as um

        return um.train(method, self.base, self.data, self.names, self.sel.layer, cfg.steps, cfg.lr, cfg.seed,
                        coef=self.coef, u=self.u.get(method),
                        retain_weight=cfg.retain_weight if method != "gradient_ascent" else 1.0,
                        reg_weight=cfg.reg_weight, relevant=self.relevant, batch=cfg.batch_size, target=cfg.target,
                        progress=progress, push_weight=cfg.push_weight)


def prepare(cfg: UnlearnConfig) -> Setup:
    """Load the model and SAEs, choose the layer and features (stage 1), build the subspaces (stage 2)."""
    from interp.loading import load_model

    from . import unlearn_methods as um
    from .unlearn_select import basis, select

    model_name = cfg.model or tuned_model()
    loaded = load_model(model_name)
    saes = load_saes(sae_run(cfg, model_name), model_name)
    if loaded.is_diffusion:  # its answers sit at masks, not after the prompt: every forget/retain term would misread
        raise InterpError(f"unlearning runs on autoregressive models; {model_name} is a diffusion model")
    base = load_model(model_name, bridge=False).model.eval()  # a plain HF model (the bridge wraps its own copy)
    data = _batches(loaded.tokenizer, cfg)
    enc = lambda batch: [(batch[0][i:i + 64], batch[1][i:i + 64]) for i in range(0, min(len(batch[0]), 512), 64)]
    deep = {l: v[:2] for l, v in saes.items() if l >= 2}  # the update spans l-2..l: layers with two below them
    candidates = deep if deep and cfg.layer is None else {l: v[:2] for l, v in saes.items()}
    sel = select(loaded.bridge, candidates, enc(data.forget), [b for r in data.retain for b in enc(r)],
                 cfg.features, cfg.layer, cfg.irrelevant)
    _, sae, sae_dir = saes[sel.layer]
    relevant, irrelevant = basis(sae, sel.forget), basis(sae, sel.irrelevant)
    layers = [l for l in range(sel.layer - 2, sel.layer + 1) if l >= 0]
    names = um.param_names(base, layers, cfg.params)
    if not names:
        raise InterpError(f"--params {cfg.params!r} matches no parameter in layers {layers}")
    with torch.no_grad(), um.capture(base, sel.layer) as h:
        base(input_ids=data.forget[0][:256])
    coef = cfg.steering_coef * h[0].norm(dim=-1).mean().item()
    inputs, targets = (t[:512] for t in data.forget)  # training prompts: choosing u never sees the test split
    mask = data.forget_mask[:512] if data.forget_mask is not None else torch.ones_like(inputs, dtype=torch.bool)
    score = lambda u: um.half_push_recall(base, sel.layer, inputs, targets, mask, coef * u)
    u = {method: um.control_vector(base.config.hidden_size, cfg.seed, basis, cfg.control_draws, score)
         for method, basis in (("sspu", irrelevant), ("rmu", None))}
    return Setup(model_name, base, loaded.tokenizer, data, sel, sae, sae_dir, relevant, irrelevant, names, coef, u)


def unlearn(cfg: UnlearnConfig | None = None, show_progress: bool = True, overwrite: bool = False) -> dict:
    """The whole method (module docstring). A finished run of the same options at `cfg.out` is read back; a
    stopped one resumes from its `.partial` directory: methods already trained and rows already evaluated are
    read back, not redone. `overwrite` starts again over a run of ours."""
    from interp.rundir import RunDir

    cfg = cfg or UnlearnConfig()
    cfg.validate()
    if cfg.sae:
        check_sae_run(Path(cfg.sae))  # before the default model's fine-tune, which takes minutes
    run = RunDir(cfg.out, "unlearn")
    state = run.check(resume=True, overwrite=overwrite, reuse_finished=True)
    if state == "finished":
        report = json.loads((run.out / "report.json").read_text())
        if not same_options(report["config"], cfg):
            raise InterpError(f"{run.out} holds a finished run with other options; choose another --out or pass "
                              f"--overwrite")
        return report
    saved = run.work / "config.json"
    if state == "resume" and saved.exists() and not same_options(json.loads(saved.read_text()), cfg):
        raise InterpError(f"{run.work} holds a stopped run with other options; rerun with those, choose another "
                          f"--out, or pass --overwrite")
    s = prepare(cfg)
    with run.writing(resume=True, overwrite=overwrite) as work:
        return _unlearn(cfg, s, work, show_progress)


def _unlearn(cfg: UnlearnConfig, s: "Setup", work: Path, show_progress: bool) -> dict:
    """Stage 3 and the evaluation, written into `work`; returns the report."""
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from interp.corpus import packed_corpus_batch

    from . import unlearn_methods as um
    from .feature_store import FeatureStore
    from .unlearn_eval import chance, evaluate

    base, tok, sel, sae = s.base, s.tok, s.sel, s.sae
    forget, retain = cfg.forget_tasks()[0], cfg.retain_tasks()

    write_atomic(work / "selection.json", json.dumps(_selection_json(sel, s.sae_dir), indent=1))
    bases = {"relevant": s.relevant, "irrelevant": s.irrelevant, "u": s.u["sspu"]}
    save_file({k: v.contiguous() for k, v in bases.items()}, str(work / "bases.safetensors"))
    write_atomic(work / "config.json", json.dumps(asdict(cfg), indent=1))  # last: marks the directory resumable
    bar = tqdm(total=3 * cfg.steps, desc="unlearn", disable=not show_progress)
    models = {m: _trained(m, base, work, s.names, lambda m: s.train(m, cfg, bar), bar) for m in um.UNLEARN_METHODS}
    bar.close()

    corpus = packed_corpus_batch(tok, 16, 64, "unlearn-eval")
    max_acts = torch.tensor(FeatureStore(s.sae_dir).summary["max_act"])
    clamp = lambda m: um.edit_output(m, sel.layer, um.clamp_fn(sae, sel.forget, cfg.clamp, max_acts))
    jobs = {"original": lambda: evaluate(base, tok, forget, retain, corpus, sel.layer, cfg)}
    jobs |= {m: (lambda m=m: evaluate(models[m], tok, forget, retain, corpus, sel.layer, cfg, original=base))
             for m in um.UNLEARN_METHODS}
    jobs["sae_clamping"] = lambda: evaluate(base, tok, forget, retain, corpus, sel.layer, cfg, original=base,
                                            edit=clamp)
    rows = {}
    (work / "rows").mkdir(exist_ok=True)
    for name, job in tqdm(jobs.items(), desc="evaluate", disable=not show_progress):
        path = work / "rows" / f"{name}.json"
        if not path.exists():
            write_atomic(path, json.dumps(job()))
        rows[name] = json.loads(path.read_text())
    before = dict(base.named_parameters())
    changed = [n for n, p in models["sspu"].named_parameters() if not torch.equal(p, before[n])]
    report = {"config": asdict(cfg), "model": s.model_name, "layer": sel.layer, "hook": sel.hook, "params": s.names,
              "changed_params": changed, "chance": chance(forget, cfg.n_eval), "coef": s.coef, "rows": rows}
    models["sspu"].save_pretrained(work / "model")
    tok.save_pretrained(work / "model")
    write_atomic(work / "report.json", json.dumps(report, indent=1))
    write_atomic(work / "report.md", table(report))
    return report


COLUMNS = ("forget", "retain_mean", "corpus_ce", "few_shot", "reworded", "format", "relearn", "probe", "ablation")


def table(report: dict) -> str:
    retain = list(next(iter(report["rows"].values()))["retain"])
    head = ["method", "forget", *retain, "retain mean", "corpus CE", "few-shot", "reworded", "format", "relearn",
            "probe", "ablation"]
    pct = lambda v: "–" if v is None else f"{100 * v:.1f}"
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, r in report["rows"].items():
        cells = [pct(r["forget"]), *(pct(r["retain"][t]) for t in retain), pct(r["retain_mean"]),
                 f"{r['corpus_ce']:.3f}", *(pct(r.get(k)) for k in COLUMNS[3:])]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"accuracy in %; chance (most common answer) {100 * report['chance']:.1f}%; layer {report['layer']}")
    chosen = ", ".join(f"{m} {r['relearn_lr']:g}" for m, r in report["rows"].items())
    lines.append(f"relearn: the attacker's best learning rate of {report['config']['relearn_lrs']} ({chosen})")
    return "\n".join(lines) + "\n"


def experiment(base: UnlearnConfig, seeds: int, out: str | Path) -> dict:
    """`unlearn` for seeds 0..seeds-1 (each its own run directory under `out`, so a stopped experiment
    resumes); mean +- std per method and metric, and SSPU - RMU per metric."""
    from dataclasses import replace

    from interp.rundir import RunDir

    if seeds < 1:
        raise InterpError("the experiment needs at least one seed")
    run = RunDir(out, "unlearn-experiment", atomic=False)
    run.check(resume=True, reuse_finished=True)
    with run.writing(resume=True, reuse_finished=True) as out:
        reports = [unlearn(replace(base, seed=s, out=str(out / f"s{s}"))) for s in range(seeds)]
        return _experiment_table(base, seeds, out, reports)


def _experiment_table(base: UnlearnConfig, seeds: int, out: Path, reports: list[dict]) -> dict:
    from statistics import mean, pstdev

    methods = list(reports[0]["rows"])
    value = lambda r, m, k: r["rows"][m].get(k) if k != "retain_mean" else r["rows"][m]["retain_mean"]
    summary = {m: {k: [value(r, m, k) for r in reports] for k in COLUMNS} for m in methods}
    cell = lambda v, k: "–" if None in v else (f"{mean(v):.3f}" if k == "corpus_ce" else
                                                 f"{100 * mean(v):.1f} ± {100 * pstdev(v):.1f}")
    lines = ["| method | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    lines += [f"| {m} | " + " | ".join(cell(summary[m][k], k) for k in COLUMNS) + " |" for m in methods]
    diff = {k: 100 * (mean(summary["sspu"][k]) - mean(summary["rmu"][k])) for k in COLUMNS
            if k != "corpus_ce" and None not in summary["sspu"][k] + summary["rmu"][k]}
    lines += ["", f"seeds {seeds}; accuracy in %; chance {100 * reports[0]['chance']:.1f}%; layers "
              f"{sorted({r['layer'] for r in reports})}",
              "SSPU - RMU at the same retain weight (points): " + ", ".join(f"{k} {v:+.1f}" for k, v in diff.items()),
              "At matched retain accuracy instead: `interp unlearn frontier`.",
              f"relearn: the attacker's best learning rate of {base.relearn_lrs}, per seed: " +
              "; ".join(f"{m} " + ", ".join(f"{r['rows'][m]['relearn_lr']:g}" for r in reports) for m in methods)]
    markdown = "\n".join(lines) + "\n"
    (out / "experiment.json").write_text(json.dumps({"config": asdict(base), "seeds": seeds, "summary": summary,
                                                     "sspu_minus_rmu": diff}, indent=1))
    (out / "experiment.md").write_text(markdown)
    return {"summary": summary, "markdown": markdown, "sspu_minus_rmu": diff}
