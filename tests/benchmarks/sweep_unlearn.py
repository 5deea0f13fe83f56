"""What we tried to make SSPU forget: each variant's SSPU and RMU forget / retain accuracy (clean, no attacks),
one seed, so a variant costs about a minute instead of a full `interp unlearn` run.

A variant is a set of `UnlearnConfig` overrides. Results go to OUT/sweep.jsonl (one line per variant, so a stopped
sweep resumes) and OUT/sweep.md.

    python tests/benchmarks/sweep_unlearn.py --out runs/unlearn-sweep
    python tests/benchmarks/sweep_unlearn.py --only "features 16" "layer 3"
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

from interp.evaluate import accuracy
from interp.tasks import make_examples
from saes.unlearning import UnlearnConfig, prepare

VARIANTS = {
    "default (features 48, reg 10, retain weight 20, c 1, push at distinct positions)": {},
    "push at every position": dict(push_at="all"),
    "push at every position, c 3 (the earlier default)": dict(push_at="all", steering_coef=3.0),
    "c 3": dict(steering_coef=3.0),
    "c 3, retain weight 40": dict(steering_coef=3.0, retain_weight=40.0),
    "c 3, retain weight 80": dict(steering_coef=3.0, retain_weight=80.0),
    "reg 0 (no subspace constraint)": dict(reg_weight=0.0),
    "reg 100": dict(reg_weight=100.0),
    "features 16": dict(features=16),
    "irrelevant = quiet latents": dict(irrelevant="quiet"),
    "retain weight 15": dict(retain_weight=15.0),
    "retain weight 25": dict(retain_weight=25.0),
    "layer 3": dict(layer=3),
}


def clean_accuracy(model, tok, cfg: UnlearnConfig) -> tuple[float, float]:
    test = lambda t: make_examples(t, "test", cfg.n_eval, 0)
    retain = [accuracy(model, tok, test(t)) for t in cfg.retain_tasks()]
    return accuracy(model, tok, test(cfg.forget_tasks()[0])), sum(retain) / len(retain)


def rmu_key(config: dict, layer: int) -> tuple:
    """RMU ignores the SSPU-only options (features, reg_weight): variants that differ only there share its run."""
    return layer, *(config[k] for k in ("retain_weight", "steering_coef", "steps", "lr", "params", "push_at", "seed"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/unlearn-sweep")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="*", help="variant names (default: all)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "sweep.jsonl"
    done = {r["variant"]: r for r in map(json.loads, log.read_text().splitlines())} if log.exists() else {}
    for name in args.only or VARIANTS:
        cfg = replace(UnlearnConfig(seed=args.seed), **VARIANTS[name])
        if name in done and done[name]["config"] == asdict(cfg):
            continue
        s = prepare(cfg)
        row = {"variant": name, "config": asdict(cfg), "layer": s.sel.layer}
        row["sspu"] = clean_accuracy(s.train("sspu", cfg), s.tok, cfg)
        key = rmu_key(row["config"], row["layer"])
        same = [r["rmu"] for r in done.values() if rmu_key(r["config"], r["layer"]) == key]
        row["rmu"] = same[0] if same else clean_accuracy(s.train("rmu", cfg), s.tok, cfg)
        print(f"{name}: layer {row['layer']}, SSPU {row['sspu']}, RMU {row['rmu']}", flush=True)
        done[name] = row
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")
    pct = lambda fr: f"{100 * fr[0]:.1f} / {100 * fr[1]:.1f}"
    lines = ["| variant | layer | SSPU forget / retain | RMU forget / retain |", "|---|---|---|---|"]
    lines += [f"| {n} | {done[n]['layer']} | {pct(done[n]['sspu'])} | {pct(done[n]['rmu'])} |"
              for n in VARIANTS if n in done]
    (out / "sweep.md").write_text("\n".join(lines) + f"\n\nseed {args.seed}; accuracy in % on "
                                  f"{UnlearnConfig().n_eval} test prompts\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
