"""How much accuracy uniform LoRA's rank buys on each task: the ceiling on what reallocating a fixed rank budget
(CircuitLoRA) can gain over it. Same loop, data, steps and seeds as `interp circuit-lora experiment`.

A rank's run that already exists in a finished experiment (rank 8 = the default uniform LoRA) or sweep (rank 2 =
the low-rank variant's) is linked, not retrained: same config, same result. Resumable; writes OUT/scan.md.

    python tests/benchmarks/lora_rank_scan.py --ranks 2,8,32 --out runs/lora-rank-scan
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from statistics import mean, pstdev

from circuits.allocation import layer_sizes, lora_parameters
from circuits.circuit_lora import CircuitLoRAConfig, finetune_config, train_methods
from interp.finetune import LoRAOptions, target_modules
from interp.loading import load_model
from interp.tasks import TASKS

# finished runs of uniform LoRA at a rank, by rank: <dir>/<task>/s<seed>/lora
FINISHED = {8: Path("runs/circuit-lora-experiment"),
            2: Path("runs/circuit-lora-sweep/low_rank_1-4_LoRA_r2_and_AdaLoRA_budget_2")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", default="2,8,32")
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("runs/lora-rank-scan"))
    args = ap.parse_args()
    tasks = list(TASKS) if args.tasks == "all" else args.tasks.split(",")
    ranks = [int(r) for r in args.ranks.split(",")]
    model = load_model("pythia-mini", bridge=False).model
    targets = target_modules(finetune_config(CircuitLoRAConfig()), model)
    sizes, total = layer_sizes(model, targets), sum(p.numel() for p in model.parameters())
    acc: dict[int, dict[str, list[float]]] = {r: {t: [] for t in tasks} for r in ranks}
    share = {}
    for seed in range(args.seeds):
        for task in tasks:
            for r in ranks:
                cfg = replace(CircuitLoRAConfig(), task=task, seed=seed)
                out = args.out / f"r{r}" / task / f"s{seed}"
                out.mkdir(parents=True, exist_ok=True)
                done = FINISHED[r] / task / f"s{seed}" / "lora" if r in FINISHED else None
                if done and done.is_dir() and not (out / "lora").exists():
                    (out / "lora").symlink_to(done.resolve(), target_is_directory=True)
                ft = finetune_config(cfg, method="lora", lora=LoRAOptions(r=r))
                row = train_methods(cfg, {"lora": (ft, str(r), lora_parameters(sizes, lambda l: r))}, out, total)[0]
                acc[r][task].append(100 * row["accuracy"])
                share[r] = row["share"]
                (out / "results.json").write_text(json.dumps({"rows": [row]}, indent=1))
    lines = ["| uniform LoRA rank | " + " | ".join(tasks) + " | mean | trainable share |",
             "|---|" + "---|" * (len(tasks) + 2)]
    for r in ranks:
        cells = " | ".join(f"{mean(acc[r][t]):.1f} ± {pstdev(acc[r][t]):.1f}" for t in tasks)
        lines.append(f"| {r} | {cells} | {mean(mean(acc[r][t]) for t in tasks):.1f} | {100 * share[r]:.2f}% |")
    lines.append(f"\nseeds 0-{args.seeds - 1}, test accuracy mean ± std over seeds")
    (args.out / "scan.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
