"""Training past one process: the activation cache against the live stream, and 1 against 2 processes.

Every number is a real `interp` command run as a subprocess, one thread per process (OMP_NUM_THREADS=1), on
pythia-mini's `blocks.1/2.hook_resid_post`, timed by the training loop's own clock (`train_seconds` in
metrics.json: the model's forward passes included when streaming, evaluation excluded) plus, for the cache,
the wall time of `cache-activations`:

* cache vs stream: one SAE trained from the live stream against the same SAE from a cache (tokens/s);
* a sweep of 4 SAEs (widths x k): 4 streaming runs against one cache and 4 runs from it (total seconds);
* 1 vs 2 processes (torchrun, gloo): data-parallel (one hook) and hook-parallel (two hooks), streaming and
  from the cache; scaling efficiency = tokens/s of 2 processes / (2 x tokens/s of 1).

    python tests/benchmarks/bench_scaling.py [--tokens N] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOOKS = ["blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]
SWEEP = [(2048, 16), (2048, 32), (4096, 16), (4096, 32)]  # (width, k)


def interp(args: list[str], procs: int = 1) -> float:
    """Run `interp ARGS` (under torchrun for procs > 1); returns the wall seconds."""
    launch = [sys.executable, "-m", "interp"] if procs == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs), "-m", "interp"]
    start = time.perf_counter()
    proc = subprocess.run(launch + args, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"failed: {' '.join(args)}\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def train(out: Path, tokens: int, hooks: list[str], procs: int = 1, extra: tuple = ()) -> dict:
    args = ["train-sae", "--tokens", str(tokens), "--eval-tokens", "4096", "--feature-tokens", "4096",
            "--out", str(out), *[a for h in hooks for a in ("--hook", h)], *extra]
    interp(args, procs)
    metrics = json.loads((out / "metrics.json").read_text())
    first = next(iter(metrics.values()))
    return {"train_seconds": first["train_seconds"], "tokens_per_s": round(first["tokens"] / first["train_seconds"]),
            "ev": {k: round(m["explained_variance"], 4) for k, m in metrics.items()}}


def measure(tokens: int, work: Path) -> dict:
    cache = work / "cache"
    cache_seconds = interp(["cache-activations", "--tokens", str(tokens), "--out", str(cache),
                            *[a for h in HOOKS for a in ("--hook", h)]])
    one = [HOOKS[1]]
    res = {"tokens": tokens, "cache_seconds": round(cache_seconds, 1)}
    res["stream"] = train(work / "stream", tokens, one)
    res["cached"] = train(work / "cached", tokens, one, extra=("--activations", str(cache)))
    res["dp2_stream"] = train(work / "dp2s", tokens, one, 2)
    res["dp2_cached"] = train(work / "dp2c", tokens, one, 2, ("--activations", str(cache)))
    res["two_hooks"] = train(work / "h1", tokens, HOOKS)
    res["hp2_stream"] = train(work / "hp2", tokens, HOOKS, 2, ("--distribute-hooks",))
    sweep_stream = sweep_cached = 0.0
    for width, k in SWEEP:
        shape = ("--width", str(width), "--k", str(k))
        sweep_stream += train(work / f"s{width}-{k}", tokens, one, extra=shape)["train_seconds"]
        sweep_cached += train(work / f"c{width}-{k}", tokens, one, extra=(*shape, "--activations", str(cache)))[
            "train_seconds"]
    res["sweep"] = {"streaming_seconds": round(sweep_stream, 1),
                    "cache_plus_runs_seconds": round(cache_seconds + sweep_cached, 1)}
    return res


def markdown(r: dict) -> str:
    def eff(two, one):
        return f"{r[two]['tokens_per_s'] / (2 * r[one]['tokens_per_s']):.2f}"

    rows = [("1 process, stream (one hook)", "stream", "–"), ("1 process, from the cache", "cached", "–"),
            ("2 processes data-parallel, stream", "dp2_stream", eff("dp2_stream", "stream")),
            ("2 processes data-parallel, from the cache", "dp2_cached", eff("dp2_cached", "cached")),
            ("1 process, stream (two hooks)", "two_hooks", "–"),
            ("2 processes hook-parallel, stream (two hooks)", "hp2_stream", eff("hp2_stream", "two_hooks"))]
    lines = ["| run | tokens/s per SAE | scaling efficiency | EV |", "|---|---|---|---|"]
    lines += [f"| {name} | {r[key]['tokens_per_s']:,} | {e} | {', '.join(map(str, r[key]['ev'].values()))} |"
              for name, key, e in rows]
    s = r["sweep"]
    lines += ["", f"Sweep of {len(SWEEP)} SAEs (widths x k {SWEEP}): {s['streaming_seconds']} s as {len(SWEEP)} "
                  f"streaming runs, {s['cache_plus_runs_seconds']} s as one cache ({r['cache_seconds']} s) and "
                  f"{len(SWEEP)} runs from it."]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tokens", type=int, default=409_600, help="training activations per SAE")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as work:
        res = measure(args.tokens, Path(work))
    print(json.dumps(res, indent=1))
    print(markdown(res))
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
