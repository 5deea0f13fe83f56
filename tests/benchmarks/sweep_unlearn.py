"""What we tried to make SSPU forget: each variant's SSPU and RMU forget and retain accuracy on clean prompts, and
forget accuracy under the two attacks that decide the comparison at matched retain (the linear probe and the
direction ablation), over the seeds asked for. No few-shot, reworded, format or relearning attacks, so a variant
costs under a minute a seed instead of a full `interp unlearn` run.

A variant is a set of `UnlearnConfig` overrides, by option name (`with_options`). Results go to OUT/sweep.jsonl (one line per variant and seed, so
a stopped sweep resumes) and OUT/sweep.md (means over the seeds each variant has).

    python tests/benchmarks/sweep_unlearn.py --out runs/unlearn-sweep
    python tests/benchmarks/sweep_unlearn.py --seeds 0 1 2 --only default "150 steps" "600 steps"
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from interp.evaluate import accuracy
from saes.unlearning import UnlearnConfig, prepare, with_options
from saes.unlearning.evaluate import ablation_accuracy, probe_accuracy, prompt_sets, test_set

# the variants are measured against the defaults this sweep ran under; `interp unlearn`'s have moved on since
BASE = dict(steps=300, forget_text="prompts", retain_weight=20.0)
OLD = dict(steps=150)  # the default step budget until the step sweep below showed both methods still forgetting
VARIANTS = {
    "default (300 steps, features 48, reg 10, retain weight 20, c 1, push at distinct positions)": {},
    "150 steps": OLD,
    "600 steps": dict(steps=600),
    "retain weight 15": dict(retain_weight=15.0),
    "retain weight 25": dict(retain_weight=25.0),
    "reg 0 (no subspace constraint)": dict(reg_weight=0.0),
    "irrelevant = quiet latents": dict(irrelevant="quiet"),
    "reg 0, irrelevant = quiet latents": dict(reg_weight=0.0, irrelevant="quiet"),
    "reg 0, irrelevant = quiet latents, retain weight 15": dict(reg_weight=0.0, irrelevant="quiet", retain_weight=15.0),
    "150 steps, push at every position": dict(OLD, push_at="all"),
    "150 steps, push at every position, c 3": dict(OLD, push_at="all", steering_coef=3.0),
    "150 steps, c 3": dict(OLD, steering_coef=3.0),
    "150 steps, c 3, retain weight 40": dict(OLD, steering_coef=3.0, retain_weight=40.0),
    "150 steps, c 3, retain weight 80": dict(OLD, steering_coef=3.0, retain_weight=80.0),
    "150 steps, reg 0": dict(OLD, reg_weight=0.0),
    "150 steps, reg 100": dict(OLD, reg_weight=100.0),
    "150 steps, features 16": dict(OLD, features=16),
    "150 steps, irrelevant = quiet latents": dict(OLD, irrelevant="quiet"),
    "150 steps, retain weight 15": dict(OLD, retain_weight=15.0),
    "150 steps, retain weight 25": dict(OLD, retain_weight=25.0),
    "150 steps, layer 3": dict(OLD, layer=3),
}
METRICS = ("forget", "retain", "probe", "ablation")


def measure(model, s, cfg: UnlearnConfig) -> dict:
    retain = [accuracy(model, s.tok, test_set(t, cfg.n_eval)) for t in cfg.retain_tasks()]
    clean = prompt_sets(cfg.forget, cfg.n_eval, cfg.seed)["clean"]
    return {"forget": accuracy(model, s.tok, clean), "retain": sum(retain) / len(retain),
            "probe": probe_accuracy(model, s.tok, cfg.forget, s.sel.layer, cfg.probe_examples, cfg.n_eval, cfg.seed),
            "ablation": ablation_accuracy(model, s.base, s.tok, clean, s.sel.layer)}


def chosen(only: list[str] | None) -> list[str]:
    if not only:
        return list(VARIANTS)
    return [n for n in VARIANTS if n in only or any(o not in VARIANTS and n.startswith(o) for o in only)]


def complete(row: dict) -> bool:
    return all(k in row[m] for m in ("sspu", "rmu") for k in METRICS)


def rmu_key(config: dict, layer: int) -> tuple:
    """RMU ignores the SSPU-only options (features, reg_weight, irrelevant): variants that differ only there share
    its run."""
    return layer, *(config[k] for k in ("retain_weight", "steering_coef", "steps", "lr", "params", "push_at", "seed"))


def table(done: dict) -> str:
    def mean(rows, m, k):
        return "–" if any(k not in r[m] for r in rows) else f"{100 * sum(r[m][k] for r in rows) / len(rows):.1f}"

    cell = lambda rows, m: " / ".join(mean(rows, m, k) for k in METRICS)
    lines = ["| variant | seeds | SSPU forget / retain / probe / ablation | RMU forget / retain / probe / ablation |",
             "|---|---|---|---|"]
    for name in VARIANTS:
        rows = [r for (n, _), r in sorted(done.items()) if n == name]
        if rows:
            lines.append(f"| {name} | {len(rows)} | {cell(rows, 'sspu')} | {cell(rows, 'rmu')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/unlearn-sweep")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--n-eval", type=int, default=200,
                    help="test prompts per task (200 made the table in docs/results/unlearning-variants.md)")
    ap.add_argument("--only", nargs="*", help="variant names; one that names none is taken as a start (default: all)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "sweep.jsonl"
    done = {}
    for r in map(json.loads, log.read_text().splitlines() if log.exists() else []):
        # a row saved before the options were grouped drew its rows from other random streams: not reused
        if set(r["config"]) == set(asdict(UnlearnConfig())):
            done[r["variant"], r["config"]["seed"]] = r
    for seed in args.seeds:
        for name in chosen(args.only):
            cfg = with_options(UnlearnConfig(seed=seed, n_eval=args.n_eval), **(BASE | VARIANTS[name]))
            if (name, seed) in done and done[name, seed]["config"] == asdict(cfg) and complete(done[name, seed]):
                continue
            s = prepare(cfg)
            row = {"variant": name, "config": asdict(cfg), "layer": s.sel.layer}
            row["sspu"] = measure(s.train("sspu", cfg), s, cfg)
            key = rmu_key(row["config"], row["layer"])
            same = [r["rmu"] for r in done.values() if rmu_key(r["config"], r["layer"]) == key and complete(r)]
            row["rmu"] = same[0] if same else measure(s.train("rmu", cfg), s, cfg)
            print(f"{name}, seed {seed}: layer {row['layer']}, SSPU {row['sspu']}, RMU {row['rmu']}", flush=True)
            done[name, seed] = row
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")
    text = table(done)
    (out / "sweep.md").write_text(text + f"\n\nmeans over the seeds run; accuracy in % on {args.n_eval} "
                                  f"test prompts; – : not measured (rows from before the sweep measured attacks)\n")
    print(text)


if __name__ == "__main__":
    main()
