"""Goals 1 and 2 for SSPU alone, at any `interp unlearn` options: a quick read of a candidate setting.

`interp unlearn` trains and attacks every baseline (about 7.5 minutes a seed); judging whether a new setting can
meet goals 1 and 2 needs only SSPU's forget and retain accuracy. This trains SSPU alone for each seed (about 2.6
minutes) and reads both on the test split and on the held-out `circuit` split, against the bars taken from the
original model on the same split. Retain accuracy is read on the default retain families as well as `--retain`'s,
so a smaller retain set cannot hide what it stops holding. No attack runs, so it says nothing about goal 3: a
setting that reads well here still needs `interp unlearn ... frontier`.

    python tests/benchmarks/sspu_goals.py --seeds 5 --retain-weight 90
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from statistics import mean

from heldout_unlearn import chance, goal_numbers  # this folder: the script's own, first on sys.path
from tqdm import tqdm

from interp.errors import InterpError
from saes.unlearning import UnlearnConfig, prepare

SPLITS = ("test", "circuit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--retain-weight", type=float, default=UnlearnConfig.retain_weight)
    parser.add_argument("--push-weight", default=UnlearnConfig.push_weight)
    parser.add_argument("--steps", type=int, default=UnlearnConfig.steps)
    parser.add_argument("--retain", default=UnlearnConfig.retain, help="comma-separated task families to keep")
    parser.add_argument("--control-draws", type=int, default=UnlearnConfig.control_draws)
    parser.add_argument("--out", type=Path, default=None, help="write the per-seed numbers here as JSON")
    args = parser.parse_args()
    base = UnlearnConfig(retain_weight=args.retain_weight, push_weight=args.push_weight, steps=args.steps,
                         retain=args.retain, control_draws=args.control_draws)
    try:
        base.validate()
    except InterpError as err:  # bad options: one line, before any training
        raise SystemExit(f"error: {err}")
    results = []
    for seed in tqdm(range(args.seeds), desc="seeds"):
        cfg = replace(base, seed=seed)
        setup = prepare(cfg)
        model = setup.train("sspu", cfg).eval()
        retain = list(dict.fromkeys(UnlearnConfig().retain_tasks() + cfg.retain_tasks()))
        results.append({split: goal_numbers(model, setup.tok, cfg.forget, retain, cfg.n_eval, split)
                        for split in SPLITS})
        if seed == 0:
            original = {split: goal_numbers(setup.base, setup.tok, cfg.forget, retain, cfg.n_eval, split)
                        for split in SPLITS}
    print(f"SSPU, retain {args.retain} at weight {args.retain_weight:g}, push weight {args.push_weight}, "
          f"{args.steps} steps, {args.control_draws} control draw(s), seeds 0-{args.seeds - 1}; accuracy in %")
    print("| split | forget bar | forget (per seed) | mean | retain bar | retain mean (per seed) | mean |")
    print("|---|---|---|---|---|---|---|")
    for split in SPLITS:
        f = [100 * r[split]["forget"] for r in results]
        k = [100 * r[split]["retain_mean"] for r in results]
        cells = lambda v: ", ".join(f"{x:.1f}" for x in v)
        forget_bar = 100 * chance(cfg.forget, cfg.n_eval, split) + 5
        retain_bar = 100 * original[split]["retain_mean"] - 2
        print(f"| {split} | {forget_bar:.2f} | {cells(f)} | {mean(f):.2f} | {retain_bar:.2f} | {cells(k)} | "
              f"{mean(k):.2f} |")
    if args.out:
        args.out.write_text(json.dumps({"options": vars(args) | {"out": str(args.out)}, "original": original,
                                        "seeds": results}, indent=1))


if __name__ == "__main__":
    main()
