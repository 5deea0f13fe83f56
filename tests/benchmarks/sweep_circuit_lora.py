"""What we tried to get CircuitLoRA past uniform LoRA: each variant of the allocation rule, rank ratio and
critical-layer learning rate, over every task x seed of a finished `interp circuit-lora experiment`.

Only CircuitLoRA is retrained per variant. The baselines (uniform LoRA, AdaLoRA), the probe run and the circuits
do not depend on these options, so each variant's run directory links the base experiment's. The exception is a
variant that moves r_other, which sets the rank of the baselines and of the probe: it reruns the whole method.
A variant whose allocation equals the default's on a task/seed links the default's CircuitLoRA run too (same
config, same result). Resumable; writes OUT/sweep.md and each variant's experiment.md.

    python tests/benchmarks/sweep_circuit_lora.py --base runs/circuit-lora-experiment --out runs/circuit-lora-sweep
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from circuits.circuit_lora import CircuitLoRAConfig, allocation_for, finetune_config, circuit_lora, summarize
from interp.finetune import target_modules
from interp.rundir import RunDir
from circuits.circuit import Circuit
from interp.loading import load_model
from interp.tasks import TASKS

VARIANTS = {
    "count-by target": dict(count_by="target"),
    "mean+std": dict(critical_layers="mean+std"),
    "topk:2": dict(critical_layers="topk:2"),
    "r-critical 32 (ratio 8)": dict(r_critical=32),
    "lr-critical 8e-3 (2x)": dict(lr_critical=8e-3),
    "match-params (ratio 4)": dict(match_params=True),
    "match-params + lr-critical 8e-3": dict(match_params=True, lr_critical=8e-3),
    # a smaller budget for every method, where uniform LoRA may be short of rank
    "low rank 1/4 (LoRA r2 and AdaLoRA budget 2)": dict(r_other=1, r_critical=4),
    # controls: the critical layer picked by hand, not by the circuits
    **{f"layer {l} by hand": dict(critical_layers=f"layers:{l}") for l in range(4)},
}
SHARED = ("probe", "circuits", "lora", "adalora")


def link(src: Path, dst: Path) -> None:
    if not dst.exists():
        dst.symlink_to(src.resolve(), target_is_directory=True)


def dirname(variant: str) -> str:
    return variant.replace(" ", "_").replace("/", "-").replace(":", "").replace("(", "").replace(")", "")


def run_variant(name: str, overrides: dict, base: Path, out: Path, tasks: list[str], seeds: int, model) -> None:
    root = out / dirname(name)
    methods = ("lora", "adalora", "circuit_lora")
    # the baselines' and the probe's rank follow r_other: where it moves, the whole method reruns
    same_rank = replace(CircuitLoRAConfig(), **overrides).uniform_rank() == CircuitLoRAConfig().uniform_rank()
    shared = SHARED if same_rank else ()
    for seed in range(seeds):
        for task in tasks:
            src, dst = base / task / f"s{seed}", root / task / f"s{seed}"
            with RunDir(dst, "circuit-lora", atomic=False).writing(resume=True, reuse_finished=True):
                for d in shared:  # the run directory is ours before the links go in
                    link(src / d, dst / d)
            cfg = replace(CircuitLoRAConfig(), **overrides, task=task, seed=seed, out=str(dst), methods=methods)
            default = json.loads((src / "allocation.json").read_text())
            targets = target_modules(finetune_config(cfg), model)
            alloc = allocation_for(cfg, Circuit.load(src / "circuits" / "before.json"),
                              Circuit.load(src / "circuits" / "after.json"), model, targets)
            same = (alloc.critical == default["critical_layers"] and cfg.lr_critical is None
                    and (alloc.r_other, alloc.r_critical) == (default["r_other"], default["r_critical"]))
            if same:
                link(src / "circuit_lora", dst / "circuit_lora")
            print(f"[{name}] {task} s{seed}: critical {alloc.critical} (default {default['critical_layers']}), "
                  f"ranks {alloc.r_other}/{alloc.r_critical}{' -> same run as default' if same else ''}", flush=True)
            circuit_lora(cfg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, default=Path("runs/circuit-lora-experiment"))
    ap.add_argument("--out", type=Path, default=Path("runs/circuit-lora-sweep"))
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--only", default=None, help="comma-separated variant names")
    args = ap.parse_args()
    tasks = list(TASKS) if args.tasks == "all" else args.tasks.split(",")
    model = load_model("pythia-mini", bridge=False).model
    chosen = {k: v for k, v in VARIANTS.items() if not args.only or k in args.only.split(",")}
    default = summarize(args.base, tasks)["summary"]
    lines = ["| variant | " + " | ".join(tasks) + " | mean | share | − LoRA | − AdaLoRA |",
             "|---|" + "---|" * (len(tasks) + 4)]

    def row(label: str, s: dict, ref: dict) -> str:  # ref: LoRA and AdaLoRA over the same tasks and seeds
        cells = " | ".join(f"{s['tasks'][t]['mean']:.1f}" if t in s["tasks"] else "–" for t in tasks)
        return (f"| {label} | {cells} | {s['mean']:.1f} | {100 * s['share']:.2f}% | "
                f"{s['mean'] - ref['lora']['mean']:+.2f} | {s['mean'] - ref['adalora']['mean']:+.2f} |")

    lines.append(row("uniform LoRA (rank 8)", default["lora"], default))
    lines.append(row("default CircuitLoRA (topk:1, source, 4/16)", default["circuit_lora"], default))
    for name, overrides in chosen.items():
        run_variant(name, overrides, args.base, args.out, tasks, args.seeds, model)
    for name, overrides in VARIANTS.items():  # every variant with finished runs, this call's or an earlier one's
        root = args.out / dirname(name)
        if any(root.glob("*/s*/results.json")):
            summary = summarize(root, tasks, replace(CircuitLoRAConfig(), **overrides))["summary"]
            seeds = min(len(v["runs"]) for v in summary["circuit_lora"]["tasks"].values())
            lines.append(row(f"{name} ({seeds} seeds)", summary["circuit_lora"], summary))
    (args.out / "sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)

if __name__ == "__main__":
    main()
