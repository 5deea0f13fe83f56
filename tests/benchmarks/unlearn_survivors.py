"""Which mul_div prompts survive unlearning: forget accuracy on the test split by the second operand b.

mul_div asks "a * b =" or "p / b =" with b uniform in 2..31. This loads each finished `interp unlearn` run's trained
parameters (heldout_unlearn.run_models) and reads clean forget accuracy in three groups of b, for the original
model and every trained method, to show where the forget accuracy that is left sits.

    python tests/benchmarks/unlearn_survivors.py runs/unlearn/experiment-words/s0 runs/unlearn/experiment-words/s1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from heldout_unlearn import run_models  # this folder: the script's own, first on sys.path

from interp.answers import correct as answers_correct
from saes.unlearning.evaluate import test_set

GROUPS = {  # (operator or None for both, the b values)
    "b = 2": (None, range(2, 3)), "b = 3-4": (None, range(3, 5)), "b >= 5": (None, range(5, 32)),
    "a * 2": ("*", range(2, 3)), "p / 2": ("/", range(2, 3)),
}


def operator_and_b(prompt: str) -> tuple[str, int]:
    *_, op, b, _ = prompt.split()  # "... a * b =" / "... p / b ="
    return op, int(b)


def in_group(group: str, op: str, b: int) -> bool:
    want_op, bs = GROUPS[group]
    return b in bs and want_op in (None, op)


def correct(model, tok, examples) -> list[bool]:
    return answers_correct(model, tok, [e.clean for e in examples], [e.label for e in examples]).tolist()


def measure(run: Path) -> dict:
    cfg, tok, models = run_models(run)
    if cfg["forget"] != "mul_div":
        raise SystemExit(f"{run}: the groups are mul_div's second operand; this run forgets {cfg['forget']}")
    examples = test_set("mul_div", cfg["n_eval"])
    keys = [operator_and_b(e.clean) for e in examples]
    out = {"size": {g: sum(in_group(g, *k) for k in keys) for g in GROUPS}}
    for name, model in models.items():
        ok = correct(model, tok, examples)
        out[name] = {"all": {"correct": sum(ok), "of": len(ok)}}
        for g in GROUPS:
            out[name][g] = {"correct": sum(o for o, k in zip(ok, keys) if in_group(g, *k)), "of": out["size"][g]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished `interp unlearn` run directories (mul_div)")
    parser.add_argument("--out", type=Path, default=None, help="write the per-run counts here as JSON")
    args = parser.parse_args()
    results = {str(run): measure(run) for run in args.runs}
    names = [k for k in next(iter(results.values())) if k != "size"]
    cols = ["all", *GROUPS]
    print(f"clean forget accuracy in % by mul_div's second operand b, summed over {len(results)} runs")
    print("| method | " + " | ".join(cols) + " | share of the correct answers with b <= 4 |")
    print("|---|" + "---|" * (len(cols) + 1))
    for name in names:
        total = {c: [sum(r[name][c][k] for r in results.values()) for k in ("correct", "of")] for c in cols}
        cells = [f"{100 * n / d:.1f} ({n}/{d})" for n, d in total.values()]
        small = total["b = 2"][0] + total["b = 3-4"][0]
        share = f"{100 * small / total['all'][0]:.0f}%" if total["all"][0] else "–"
        print(f"| {name} | " + " | ".join(cells) + f" | {share} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
