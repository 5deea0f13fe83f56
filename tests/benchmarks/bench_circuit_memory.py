"""Edge attribution on one long context: peak memory and time against `--position-chunk`.

    python tests/benchmarks/bench_circuit_memory.py [--model smollm2] [--context 512] [--chunks 0,128,32]

The clean prompt is `--context` tokens of real text (Shakespeare from `interp zoo fetch`, else the shipped
corpus); the corrupted one replaces every tenth token; the answer is the clean text's next token, scored by
KL at the last position. Each chunk size runs EAP-IG (`--ig-steps`) in a fresh process after the model is
loaded; memory is the peak RSS growth during attribution (sampled every 5 ms), and the scores are checked
against the whole-context run's. Writes runs/bench-circuit-memory/results.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "runs/bench-circuit-memory"


def model_path(name: str) -> str:
    if name == "smollm2":
        from interp.fetch import cache_root

        path = cache_root() / "smollm2-135m-instruct"
        if not path.exists():
            sys.exit("SmolLM2 is not in the cache: run `interp zoo fetch smollm2` once")
        return str(path)
    return name


def long_batch(tokenizer, context: int):
    from circuits.data import TaskBatch
    from itertools import islice

    from interp.corpus import corpus_lines
    from interp.fetch import cache_root

    text_file = cache_root() / "text/shakespeare.jsonl"
    text = (" ".join(json.loads(line)["text"] for line in text_file.open()) if text_file.exists()
            else " ".join(islice(corpus_lines(), context * 2)))
    ids = torch.tensor(tokenizer(text[: context * 20])["input_ids"][: context + 1])
    if len(ids) < context + 1:
        sys.exit(f"not enough text for a context of {context} tokens")
    clean = ids[:context][None]
    corrupted = clean.clone()
    corrupted[0, ::10] = ids[1 : context + 1 : 10]  # every tenth token becomes its successor
    return TaskBatch(clean, corrupted, ids[context:][None])


def child(args) -> None:
    from circuits.attribution import AttributionConfig, attribute
    from circuits.graph import Graph
    from circuits.layout import Layout
    from interp.loading import load_model

    sys.path.insert(0, str(HERE))
    from autocircuit_worker import PeakRSS

    torch.set_num_threads(args.threads)
    m = load_model(model_path(args.model), hooks_for_edges=True)
    layout = Layout(Graph.from_model(m.model))
    batch = long_batch(m.tokenizer, args.context)
    cfg = AttributionConfig(method="eap-ig", metric="kl", ig_steps=args.ig_steps)
    if args.child_chunk:  # set only when chunking, so `--chunks 0` also measures a tree without the option
        cfg.position_chunk = args.child_chunk
    with PeakRSS() as mem:
        start = time.perf_counter()
        scores = attribute(m.bridge, layout, [batch], cfg)
        seconds = time.perf_counter() - start
    torch.save(scores, args.child_out + ".pt")
    Path(args.child_out).write_text(json.dumps({
        "seconds": seconds, "peak_mib": mem.peak_mib, "n_src": layout.n_src, "edges": len(scores),
        "source_outputs_mib": layout.n_src * args.context * m.model.config.hidden_size * 4 / 2**20}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2", help="smollm2 (from the cache) or any name load_model takes")
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--chunks", default="0,128,32", help="position chunks to run; 0: the whole context")
    ap.add_argument("--ig-steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child-chunk", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_out:
        return child(args)
    OUT.mkdir(parents=True, exist_ok=True)
    rows, whole = [], None
    for chunk in (int(c) for c in args.chunks.split(",")):
        out = OUT / f"chunk-{chunk}.json"
        subprocess.run([sys.executable, __file__, "--model", args.model, "--context", str(args.context),
                        "--ig-steps", str(args.ig_steps), "--threads", str(args.threads),
                        "--child-chunk", str(chunk), "--child-out", str(out)], check=True, cwd=ROOT)
        row = {"position_chunk": chunk, **json.loads(out.read_text())}
        scores = torch.load(str(out) + ".pt", weights_only=True)
        whole = scores if whole is None else whole
        row["max_rel_diff_to_first"] = ((scores - whole).abs().max() / whole.abs().max()).item()
        rows.append(row)
        print(row, flush=True)
    date = datetime.date.today().isoformat()
    (OUT / "results.json").write_text(json.dumps({"args": vars(args), "date": date, "rows": rows}, indent=1))
    lines = [f"model {args.model}, context {args.context}, EAP-IG {args.ig_steps} steps, KL, {args.threads} threads, "
             f"{rows[0]['edges']:,} edges; {date}", "",
             "| position chunk | seconds | peak RSS growth (MiB) | one [T, n_src, d] fp32 tensor (MiB) | max rel. diff |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['position_chunk'] or 'whole'} | {r['seconds']:.1f} | {r['peak_mib']:.0f} | "
              f"{r['source_outputs_mib']:.0f} | {r['max_rel_diff_to_first']:.1e} |" for r in rows]
    (OUT / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
