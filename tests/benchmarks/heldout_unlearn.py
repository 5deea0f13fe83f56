"""Goals 1 and 2 of `interp unlearn` on prompts no choice was made on: the `circuit` split.

The unlearning defaults were chosen by reading test-split numbers. The task suite's `circuit` split (10% of
each family's prompts, disjoint from train and test by hash) was never read for that choice, nor trained on by
the fine-tuned model or the unlearning. This loads each finished run's trained parameters and reads forget and
retain accuracy there, for the original model and every trained method, against the goals' bars taken from
the original model on the same split.

    python tests/benchmarks/heldout_unlearn.py runs/unlearn/experiment-words/s0 runs/unlearn/experiment-words/s1
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from statistics import mean

from safetensors.torch import load_file

from interp.evaluate import accuracy
from interp.loading import load_model
from interp.tasks import make_examples

SPLIT = "circuit"


def split_accuracy(model, tok, task: str, n: int, split: str = SPLIT) -> float:
    return accuracy(model, tok, make_examples(task, split, n, 0, at_most=True))


def goal_numbers(model, tok, forget: str, retain: list[str], n: int, split: str = SPLIT) -> dict:
    """Forget accuracy and the mean retain accuracy (with each task's) on `split`, as fractions."""
    per_task = {t: split_accuracy(model, tok, t, n, split) for t in retain}
    return {"forget": split_accuracy(model, tok, forget, n, split), "retain_mean": mean(per_task.values()),
            "retain": per_task}


def chance(task: str, n: int, split: str = SPLIT) -> float:
    labels = [e.label for e in make_examples(task, split, n, 0, at_most=True)]
    return max(labels.count(x) for x in set(labels)) / len(labels)


def run_models(run: Path) -> tuple[dict, object, dict]:
    """A finished run's config, tokenizer, and models: the original and each method's trained parameters."""
    report = json.loads((run / "report.json").read_text())
    loaded = load_model(report["model"], bridge=False)
    base = loaded.model.eval()
    models = {"original": base}
    for path in sorted((run / "trained").glob("*.safetensors")):
        models[path.stem] = copy.deepcopy(base)
        models[path.stem].load_state_dict(load_file(str(path)), strict=False)
    return report["config"], loaded.tokenizer, models


def measure(run: Path) -> dict:
    cfg, tok, models = run_models(run)
    forget, retain = cfg["forget"], [t.strip() for t in cfg["retain"].split(",")]
    out = {name: goal_numbers(model, tok, forget, retain, cfg["n_eval"]) for name, model in models.items()}
    out["chance"] = chance(forget, cfg["n_eval"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished `interp unlearn` run directories")
    parser.add_argument("--out", type=Path, default=None, help="write the per-run numbers here as JSON")
    args = parser.parse_args()
    results = {str(run): measure(run) for run in args.runs}
    first = next(iter(results.values()))
    forget_bar, retain_bar = 100 * first["chance"] + 5, 100 * first["original"]["retain_mean"] - 2
    print(f"split {SPLIT}; bars: forget <= {forget_bar:.2f} (chance {100 * first['chance']:.2f} + 5), "
          f"retain >= {retain_bar:.2f} (original {100 * first['original']['retain_mean']:.2f} - 2)")
    print("| method | forget (per run) | mean | retain mean (per run) | mean |")
    print("|---|---|---|---|---|")
    for name in [k for k in first if k != "chance"]:
        f = [100 * r[name]["forget"] for r in results.values()]
        k = [100 * r[name]["retain_mean"] for r in results.values()]
        cells = lambda v: ", ".join(f"{x:.1f}" for x in v)
        print(f"| {name} | {cells(f)} | {mean(f):.2f} | {cells(k)} | {mean(k):.2f} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
