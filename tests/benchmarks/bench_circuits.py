"""Edge attribution, ours against auto-circuit 1.0.1, on the same model, task batch and metric.

    python tests/benchmarks/bench_circuits.py [--n 128] [--batch-size 32] [--threads 1] [--repeats 2]

auto-circuit needs transformer-lens 2.x, so it runs in its own venv (`autocircuit_env.sh`, built on first
use) through `autocircuit_worker.py`, on our weights converted to a HookedTransformer (the worker checks the
logits match). Every measured call runs in a fresh process after the model is loaded: seconds of the first
call, the fastest of `--repeats` more, and peak RSS growth during the first call (sampled every 5 ms).
Metric: logit difference (label vs the model's top other answer on the corrupted prompt), the only one both
tools share (auto-circuit has no KL). Pairs: EAP vs auto-circuit's mask-gradient at mask 0 (the same
quantity: scores should agree exactly up to sign and scale); EAP-IG (IG over the input embeddings, 5 steps)
vs auto-circuit's IG (all edge masks interpolated together, 6 points): different methods, so their
agreement is reported, not expected to be 1. Writes runs/bench-circuits/results.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENV_PY = ROOT / "runs/venv-autocircuit/bin/python"
OURS = {"eap": ("eap", "logit_diff"), "eap_ig": ("eap-ig", "logit_diff"), "eap_ig_kl": ("eap-ig", "kl")}


def peak_rss():
    sys.path.insert(0, str(HERE))
    from autocircuit_worker import PeakRSS  # one sampler for both tools

    return PeakRSS()


def child(key: str, inp: str, out: str) -> None:
    """One of our runs, in a fresh process."""
    from circuits.attribution import AttributionConfig, attribute
    from circuits.data import TaskBatch
    from circuits.graph import Graph
    from circuits.layout import Layout
    from interp.loading import load_model

    spec = torch.load(inp, weights_only=True)
    torch.set_num_threads(spec["num_threads"])
    m = load_model(spec["model_dir"], hooks_for_edges=True)
    layout = Layout(Graph.from_model(m.model))
    bs = spec["batch_size"]
    batches = [TaskBatch(spec["clean"][i : i + bs], spec["corrupted"][i : i + bs], spec["answers"][i : i + bs, None])
               for i in range(0, len(spec["answers"]), bs)]
    method, metric = OURS[key]
    cfg = AttributionConfig(method=method, metric=metric, ig_steps=5)
    with peak_rss() as mem:
        start = time.perf_counter()
        scores = attribute(m.bridge, layout, batches, cfg)
        seconds = time.perf_counter() - start
    warm = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        attribute(m.bridge, layout, batches, cfg)
        warm.append(time.perf_counter() - start)
    Path(out).write_text(json.dumps({"seconds": seconds, "seconds_warm": min(warm, default=None),
                                     "peak_mib": mem.peak_mib,
                                     "scores": dict(zip(spec["edges"], scores.tolist()))}))


def top_jaccard(a: torch.Tensor, b: torch.Tensor, share: float = 0.05) -> float:
    k = max(1, round(len(a) * share))
    sa, sb = set(a.abs().topk(k).indices.tolist()), set(b.abs().topk(k).indices.tolist())
    return len(sa & sb) / len(sa | sb)


def make_input(args, path: Path) -> None:
    from circuits.data import alternative, task_batches
    from circuits.graph import Graph
    from interp.loading import load_model

    m = load_model(args.model, bridge=False)
    batches = task_batches(m.tokenizer, args.task, "circuit", args.n, 0, args.n)
    if len(batches) != 1 or batches[0].labels.shape[1] != 1:
        raise SystemExit("the benchmark wants one prompt length and one-token answers; pick another task")
    b = batches[0]
    with torch.no_grad():
        alt = alternative(m.model(input_ids=b.corrupted).logits[:, -1], b.labels[:, 0])
    torch.save({"model_dir": m.path, "clean": b.clean, "corrupted": b.corrupted, "answers": b.labels[:, 0],
                "wrong_answers": alt, "batch_size": args.batch_size, "num_threads": args.threads,
                "repeats": args.repeats, "isolate": True,
                "edges": [e.name for e in Graph.from_model(m.model).edges]}, path)


def compare(ours: dict, theirs: dict, edges: list) -> list[dict]:
    """One row per method: our timings beside auto-circuit's, and how well the two edge rankings agree."""
    from circuits.comparison import spearman

    rows = []
    for key, label in (("eap", "EAP"), ("eap_ig", "EAP-IG"), ("eap_ig_kl", "EAP-IG, KL (ours only)")):
        o = ours[key]
        row = {"method": label, "ours_s": o["seconds"], "ours_warm_s": o["seconds_warm"], "ours_mib": o["peak_mib"]}
        t = theirs["runs"].get(key)
        if t:
            a = torch.tensor([o["scores"][e] for e in edges])
            b = torch.tensor([t["scores"][e] for e in edges])
            b_mean = -b / t["grad_accumulations"]  # auto-circuit: (clean - corrupted) . grad, summed over batches
            row.update(theirs_s=t["seconds"], theirs_warm_s=t["seconds_warm"], theirs_mib=t["peak_mib"],
                       speedup_warm=t["seconds_warm"] / o["seconds_warm"], spearman_abs=spearman(a.abs(), b.abs()),
                       top5_jaccard=top_jaccard(a, b),
                       max_rel_diff=((a - b_mean).abs().max() / a.abs().max()).item() if key == "eap" else None)
        rows.append(row)
    return rows


def markdown(args, rows: list[dict]) -> list[str]:
    f = lambda x, fmt: "–" if x is None else format(x, fmt)
    lines = [f"{args.model}, {args.task}, {args.n} prompts in batches of {args.batch_size}, {args.threads} thread(s); "
             f"seconds = fastest of {args.repeats} warm calls (first call in brackets), memory = peak RSS growth",
             "", "| method | ours s | auto-circuit s | speed-up | ours MiB | auto-circuit MiB | Spearman |score| | top-5% Jaccard | max rel. diff |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {f(r['ours_warm_s'], '.3f')} ({r['ours_s']:.3f}) | "
                     f"{f(r.get('theirs_warm_s'), '.3f')} ({f(r.get('theirs_s'), '.3f')}) | {f(r.get('speedup_warm'), '.1f')}× | "
                     f"{r['ours_mib']:.0f} | {f(r.get('theirs_mib'), '.0f')} | {f(r.get('spearman_abs'), '.3f')} | "
                     f"{f(r.get('top5_jaccard'), '.2f')} | {f(r.get('max_rel_diff'), '.1e')} |")
    return lines


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child", nargs=3, metavar=("KEY", "IN", "OUT"), help=argparse.SUPPRESS)
    p.add_argument("--model", default="pythia-mini")
    p.add_argument("--task", default="add_sub")
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "runs/bench-circuits")
    args = p.parse_args()
    if args.child:
        return child(*args.child)
    if args.n % args.batch_size:
        raise SystemExit("--n must be a multiple of --batch-size (auto-circuit drops a last partial batch)")
    args.out.mkdir(parents=True, exist_ok=True)
    inp = args.out / "input.pt"
    make_input(args, inp)
    if not VENV_PY.exists():
        subprocess.run(["bash", str(HERE / "autocircuit_env.sh")], check=True)
    theirs_path = args.out / "autocircuit.json"
    subprocess.run([str(VENV_PY), str(HERE / "autocircuit_worker.py"), str(inp), str(theirs_path)], check=True)
    theirs = json.loads(theirs_path.read_text())
    ours = {}
    for key in OURS:
        part = args.out / f"ours-{key}.json"
        subprocess.run([sys.executable, __file__, "--child", key, str(inp), str(part)], check=True)
        ours[key] = json.loads(part.read_text())
    rows = compare(ours, theirs, torch.load(inp, weights_only=True)["edges"])
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
              "autocircuit": {k: theirs[k] for k in ("logit_max_abs_diff", "versions", "n_mapped_edges",
                                                     "missing_edges", "unmapped_edges", "notes")}}
    (args.out / "results.json").write_text(json.dumps(result, indent=1))
    lines = markdown(args, rows)
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
