"""`circuit_lora`: CircuitLoRA end to end (docs/methods.md §1) against uniform LoRA, AdaLoRA and full fine-tuning.

1. C_before: the circuit of the base model. 2. A short plain-LoRA probe run, merged; C_after: its circuit.
3. Per-layer edge change -> critical layers -> ranks (r_critical on every adapted module of a critical layer,
r_other elsewhere, alpha = 2r). 4. The same loop, data, steps and seed train every method; each run lives
in `out/<method>/` (resumable, adapters are PEFT directories). Uniform LoRA has rank 2 * r_other (the paper's
"similar parameter size" comparison) or, with `match_params`, CircuitLoRA's ranks are sized to match it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from interp.errors import InterpError, check_number
from interp.finetune import LoRAOptions, target_modules
from interp.options import check_fields, device_map_field, dtype_field, opt
from interp.rundir import RunDir

from .allocation import Allocation, allocate, check_ranks, layer_sizes, lora_parameters, match_params
from .circuit import Circuit

FINETUNE_METHODS = ("lora", "adalora", "circuit_lora", "full")


@dataclass
class CircuitLoRAConfig:
    model: str = opt("pythia-mini", "zoo name, local HF directory, .gguf file or hub id")
    task: str = opt("add_sub", "task family")
    r_other: int = opt(4, "rank of modules outside critical layers")
    r_critical: int = opt(16, "rank of every linear module of a critical layer")
    # the paper's 5 critical layers of 24 is about 1 of 4 here
    critical_layers: str = opt("topk:1", "topk:N, mean+std, or layers:I,J (by hand, a control)")
    count_by: str = opt("source", "count each edge's change toward its source or target layer",
                        choices=("source", "target"))
    match_params: bool = opt(False, "size the ranks to uniform LoRA's parameters (within 1%)")
    uniform_r: int | None = opt(None, "uniform LoRA's rank (default 2 x r-other)")
    probe_steps: int = opt(100, "steps of the plain-LoRA probe run that gives C_after", min=1)
    epochs: float = opt(5.0, "training epochs over the task's train examples (batch 64)")
    n_train: int = opt(4000, "train examples, at most", min=1)
    lr: float | None = opt(None, "learning rate (default 4e-3 LoRA, 5e-4 full)")
    lr_critical: float | None = opt(None, "a learning rate for the critical layers' adapters")
    n_circuit: int = opt(200, "attribution prompts per circuit", min=1)
    n_circuit_eval: int = opt(200, "test prompts each circuit's faithfulness is measured on", min=1)
    methods: tuple[str, ...] = opt(FINETUNE_METHODS, "fine-tuning methods compared")
    seed: int = opt(0, "seed of every random stream of the run", min=0)
    out: str = opt("runs/circuit-lora", cli=False)  # the command's --out: runs/circuit-lora/<model>-<task>-s<seed>
    dtype: str = dtype_field()  # in every run; LoRA adapters stay float32
    device_map: str | None = device_map_field()

    def validate(self) -> None:
        from interp.loading import check_device_map, torch_dtype
        from interp.tasks import trainable

        trainable(self.task)
        check_fields(self)
        torch_dtype(self.dtype)
        check_device_map(self.device_map)
        if min(self.r_other, self.r_critical, self.uniform_rank()) < 1:
            raise InterpError("ranks must be >= 1")
        rule = self.critical_layers
        by_hand = rule.startswith("layers:")  # checked against the model's depth by `_checked_model`
        topk = rule.startswith("topk:") and rule[5:].isdigit() and int(rule[5:]) >= 1
        if not (rule == "mean+std" or by_hand or topk):
            raise InterpError(f"critical-layer rule {rule!r} selects nothing; valid: topk:N with N >= 1, mean+std, "
                              f"layers:I,J")
        if unknown := set(self.methods) - set(FINETUNE_METHODS):
            raise InterpError(f"unknown method(s) {', '.join(sorted(unknown))}; valid: {', '.join(FINETUNE_METHODS)}")
        check_number("--epochs", self.epochs)
        for name in ("lr", "lr_critical"):
            if getattr(self, name) is not None:
                check_number(f"--{name.replace('_', '-')}", getattr(self, name))

    def uniform_rank(self) -> int:
        return self.uniform_r or 2 * self.r_other


@dataclass
class CircuitLoRAResult:
    allocation: Allocation
    rows: list[dict] = field(default_factory=list)
    out: Path | None = None


def _circuit(path: Path, cfg: CircuitLoRAConfig, checkpoint: Path | None) -> Circuit:
    """The model's circuit at a checkpoint (None: the base model), cached as JSON."""
    from .discovery import DiscoverConfig, discover
    from interp.finetune import load_at

    if path.exists():
        return Circuit.load(path)
    loaded = load_at(cfg.model, checkpoint, "lora", dtype=cfg.dtype, device_map=cfg.device_map, hooks_for_edges=True)
    circuit = discover(DiscoverConfig(model=cfg.model, task=cfg.task, n=cfg.n_circuit, n_eval=cfg.n_circuit_eval,
                                      curve=(), seed=cfg.seed),
                       loaded).circuit
    circuit.save(path)
    return circuit


def finetune_config(cfg: CircuitLoRAConfig, **kw):
    from interp.finetune import FinetuneConfig

    return FinetuneConfig(model=cfg.model, task=cfg.task, lr=cfg.lr, seed=cfg.seed, n_train=cfg.n_train,
                          dtype=cfg.dtype, device_map=cfg.device_map, **kw)


def _probe(cfg: CircuitLoRAConfig, out: Path) -> Path:
    """The short plain-LoRA run whose merged model gives C_after; its last checkpoint."""
    from interp.finetune import finetune

    finetune(finetune_config(cfg, method="lora", lora=LoRAOptions(r=cfg.uniform_rank()), steps=cfg.probe_steps,
                              checkpoint_every=cfg.probe_steps, eval_every=cfg.probe_steps, out=str(out / "probe")))
    return out / "probe" / "checkpoints" / f"step-{cfg.probe_steps}"


def allocation_for(cfg: CircuitLoRAConfig, before: Circuit, after: Circuit, model, targets: list[str]) -> Allocation:
    alloc = allocate(before, after, model, targets, cfg.r_other, cfg.r_critical, cfg.critical_layers, cfg.count_by)
    if cfg.match_params:
        r_o, r_c = match_params(layer_sizes(model, targets), alloc.critical, cfg.uniform_rank(),
                                ratio=cfg.r_critical / cfg.r_other)
        alloc = allocate(before, after, model, targets, r_o, r_c, cfg.critical_layers, cfg.count_by)
    return alloc


def _checked_model(cfg: CircuitLoRAConfig):
    """The base model, with hand-picked critical layers (`layers:I,J`) checked against its depth before any work."""
    from interp.loading import load_model

    from .allocation import critical_layers

    model = load_model(cfg.model, bridge=False, dtype=cfg.dtype, device_map=cfg.device_map).model
    if cfg.critical_layers.startswith("layers:"):
        critical_layers({}, model.config.num_hidden_layers, cfg.critical_layers)
    return model


def _circuit_lora_run(cfg: CircuitLoRAConfig, alloc: Allocation):
    """CircuitLoRA's fine-tuning config, checked: PEFT gives every module its intended rank."""
    from peft import get_peft_model

    from interp.finetune import peft_config
    from interp.loading import load_model

    ft = finetune_config(cfg, method="lora", lora=LoRAOptions(
        r=alloc.r_other, rank_pattern=alloc.ranks, alpha_pattern=alloc.alphas, lr_critical=cfg.lr_critical,
        critical_modules=alloc.critical_modules))
    model = load_model(cfg.model, bridge=False, dtype=cfg.dtype, device_map=cfg.device_map).model
    check_ranks(get_peft_model(model, peft_config(ft, model)), alloc.ranks)
    return ft


def train_methods(cfg: CircuitLoRAConfig, runs: dict, out: Path, total: int) -> list[dict]:
    """The same loop, data, steps and seed for every run (`epochs` over the task's train examples, batch 64)."""
    from interp.finetune import finetune
    from interp.tasks import make_examples

    steps = max(1, math.ceil(cfg.epochs * len(make_examples(cfg.task, "train", cfg.n_train, cfg.seed, at_most=True)) / 64))
    rows = []
    for name, (ft, ranks, formula) in runs.items():
        ft.steps, ft.eval_every, ft.checkpoint_every, ft.out = steps, steps, max(1, steps // 4), str(out / name)
        result = finetune(ft)
        trainable = sum(p.numel() for p in result.model.parameters() if p.requires_grad)
        rows.append({"method": name, "ranks": ranks, "trainable": trainable, "share": trainable / total,
                     "formula": formula, "accuracy": result.accuracy_after,
                     "accuracy_before": result.accuracy_before, "steps": steps})
    return rows


def circuit_lora(cfg: CircuitLoRAConfig = CircuitLoRAConfig(), resume: bool = True,
                 overwrite: bool = False) -> CircuitLoRAResult:
    """Circuits before and after a probe run, the allocation, and every method's run, in place in `cfg.out`:
    `resume` reuses what a stopped or finished run there made; `overwrite` starts again over it."""
    cfg.validate()
    run = RunDir(cfg.out, "circuit-lora", atomic=False)
    run.check(resume, overwrite, reuse_finished=resume)
    model = _checked_model(cfg)
    with run.writing(resume, overwrite, reuse_finished=resume) as out:
        return _circuit_lora(cfg, model, out)


def _circuit_lora(cfg: CircuitLoRAConfig, model, out: Path) -> CircuitLoRAResult:
    from interp.rundir import config_changes, write_atomic

    saved = out / "config.json"  # what a stopped run made is reused only under the same options
    if saved.exists() and (changed := config_changes(json.loads(saved.read_text()), asdict(cfg),
                                                     asdict(CircuitLoRAConfig()), ignore=("out",))):
        raise InterpError(f"{out} holds a circuit-lora run with other {', '.join(changed)}; rerun with those, choose "
                          "another --out, or pass --overwrite")
    write_atomic(saved, json.dumps(asdict(cfg), indent=1))
    before = _circuit(out / "circuits" / "before.json", cfg, None)
    after = _circuit(out / "circuits" / "after.json", cfg, _probe(cfg, out))
    targets = target_modules(finetune_config(cfg), model)
    alloc = allocation_for(cfg, before, after, model, targets)
    (out / "allocation.json").write_text(json.dumps(alloc.to_dict(), indent=1))
    sizes = layer_sizes(model, targets)
    r_u = cfg.uniform_rank()
    runs = {
        "lora": (finetune_config(cfg, method="lora", lora=LoRAOptions(r=r_u)), str(r_u), lora_parameters(sizes, lambda l: r_u)),
        "adalora": (finetune_config(cfg, method="adalora", lora=LoRAOptions(r=r_u)), f"{r_u} (budget)", None),
        "circuit_lora": (_circuit_lora_run(cfg, alloc), f"{alloc.r_other}/{alloc.r_critical}", lora_parameters(
            sizes, lambda l: alloc.r_critical if l in alloc.critical else alloc.r_other)),
        "full": (finetune_config(cfg, method="full"), "-", None),
    }
    rows = train_methods(cfg, {m: runs[m] for m in cfg.methods}, out, sum(p.numel() for p in model.parameters()))
    (out / "results.json").write_text(json.dumps({"allocation": alloc.to_dict(), "rows": rows}, indent=1))
    return CircuitLoRAResult(alloc, rows, out)


def compositional(base: CircuitLoRAConfig, out: str | Path) -> dict:
    """CircuitLoRA on the compositional task with critical layers from the union of the add_sub and mul_div
    circuits (cut to the size of the directly discovered compositional circuit, before and after the probe)
    versus from the direct circuit, versus uniform LoRA; one table."""
    from dataclasses import replace

    cfg = replace(base, task="compositional", out=str(out))
    cfg.validate()
    run = RunDir(out, "circuit-lora-compositional", atomic=False)
    run.check(resume=True, reuse_finished=True)
    model = _checked_model(cfg)
    with run.writing(resume=True, reuse_finished=True) as out:
        return _compositional(cfg, model, out)


def _compositional(cfg: CircuitLoRAConfig, model, out: Path) -> dict:
    from dataclasses import replace

    from .circuit import union
    from .comparison import jaccard

    probe = _probe(cfg, out)
    found = {(t, when): _circuit(out / "circuits" / f"{t}-{when}.json", replace(cfg, task=t), ckpt)
             for t in ("compositional", "add_sub", "mul_div") for when, ckpt in (("before", None), ("after", probe))}
    unions = {when: union(found["add_sub", when], found["mul_div", when],
                          n_edges=int(found["compositional", when].in_graph.sum())) for when in ("before", "after")}
    targets = target_modules(finetune_config(cfg), model)
    allocs = {"direct": allocation_for(cfg, found["compositional", "before"], found["compositional", "after"], model, targets),
              "union": allocation_for(cfg, unions["before"], unions["after"], model, targets)}
    sizes = layer_sizes(model, targets)
    r_u = cfg.uniform_rank()
    runs = {"lora": (finetune_config(cfg, method="lora", lora=LoRAOptions(r=r_u)), str(r_u), lora_parameters(sizes, lambda l: r_u))}
    for name, a in allocs.items():
        runs[f"circuit_lora_{name}"] = (_circuit_lora_run(cfg, a), f"{a.r_other}/{a.r_critical} critical {a.critical}",
                                        lora_parameters(sizes, lambda l, a=a: a.r_critical if l in a.critical else a.r_other))
    rows = train_methods(cfg, runs, out, sum(p.numel() for p in model.parameters()))
    overlap = {when: {"edge_jaccard": jaccard(unions[when].edge_names, found["compositional", when].edge_names),
                      "node_jaccard": jaccard(unions[when].node_names, found["compositional", when].node_names)}
               for when in ("before", "after")}
    result = {"rows": rows, "allocations": {k: a.to_dict() for k, a in allocs.items()}, "union_vs_direct": overlap}
    (out / "compositional.json").write_text(json.dumps(result, indent=1))
    return result


def experiment(base: CircuitLoRAConfig, tasks: list[str], seeds: int, out: str | Path) -> dict:
    """Every task x method x seed (seeds 0..seeds-1), each a `circuit_lora` run in `out/<task>/s<seed>/`, so an
    interrupted experiment resumes; then `summarize`."""
    from dataclasses import replace

    if seeds < 1 or not tasks:
        raise InterpError("the experiment needs at least one task and one seed")
    run = RunDir(out, "circuit-lora-experiment", atomic=False)
    run.check(resume=True, reuse_finished=True)
    with run.writing(resume=True, reuse_finished=True):
        for seed in range(seeds):  # seed by seed, so a stopped experiment has whole tables for the seeds it finished
            for task in tasks:
                circuit_lora(replace(base, task=task, seed=seed, out=str(Path(out) / task / f"s{seed}")))
        return summarize(out, tasks, base)


def summarize(out: str | Path, tasks: list[str], base: CircuitLoRAConfig | None = None) -> dict:
    """Mean +- std test accuracy per task and method over the finished seeds, the mean over tasks, parameter
    shares; written as experiment.json and experiment.md."""
    from statistics import mean, pstdev

    out = Path(out)
    acc: dict[str, dict[str, list[float]]] = {}
    share: dict[str, float] = {}
    for task in tasks:
        for path in sorted((out / task).glob("s*/results.json")):
            for row in json.loads(path.read_text())["rows"]:
                acc.setdefault(row["method"], {t: [] for t in tasks})[task].append(100 * row["accuracy"])
                share[row["method"]] = row["share"]
    done = lambda per: [t for t in tasks if per[t]]
    summary = {m: {"tasks": {t: {"mean": mean(v), "std": pstdev(v), "runs": v} for t, v in per.items() if v},
                   "mean": mean(mean(per[t]) for t in done(per)), "share": share[m]} for m, per in acc.items()}
    cell = lambda s, t: f"{s['tasks'][t]['mean']:.1f} ± {s['tasks'][t]['std']:.1f}" if t in s["tasks"] else "–"
    lines = ["| method | " + " | ".join(tasks) + " | mean | trainable share |", "|---|" + "---|" * (len(tasks) + 2)]
    for m, s in summary.items():
        lines.append(f"| {m} | " + " | ".join(cell(s, t) for t in tasks) + f" | {s['mean']:.1f} | {100 * s['share']:.2f}% |")
    lines.append("")
    seeds = {m: {t: len(v) for t, v in per.items()} for m, per in acc.items()}
    lines.append("seeds per task: " + ", ".join(f"{t} {seeds.get('circuit_lora', {}).get(t, 0)}" for t in tasks))
    if "circuit_lora" in summary:
        for other in ("lora", "adalora"):
            if other in summary:
                lines.append(f"CircuitLoRA - {other}: {summary['circuit_lora']['mean'] - summary[other]['mean']:+.2f} points")
    table = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "experiment.json").write_text(json.dumps({"config": asdict(base) if base else None, "tasks": tasks,
                                                     "seeds": seeds, "summary": summary}, indent=1))
    (out / "experiment.md").write_text(table)
    return {"summary": summary, "markdown": table}
