"""Step-only benchmark of the Top-K SAE optimiser step on random activations (no LM): ours
(`saes.trainer.train_step`: `topk_train_step`, backward, grad-norm clip, Adam, bookkeeping) against EleutherAI
sparsify's `SparseCoder` step, with this machine's fp32 matmul peak measured in the same rounds, so that a
busy machine slows all of them alike. Each round times every contender once (`--iters` steps each); the
report gives medians over `--rounds` rounds.

    python tests/benchmarks/bench_sae_step.py                      # d 576 / W 16384 / k 64 and d 128 / W 4096 / k 32
    python tests/benchmarks/bench_sae_step.py --shapes 576x16384x64 --threads 1 --dead 0.1 --out step.json

Useful FLOPs per token count the encoder matmul and the sparse terms: 2*d*W + 10*k*d (see
bench_train_sae.useful_flops_per_token). "ours, N% dead" marks that share of latents dead, so AuxK runs.
Needs `pip install eai-sparsify` for sparsify (skipped with a note otherwise).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_train_sae import BATCH, quiet, useful_flops_per_token  # noqa: E402


def seconds(fn, iters: int) -> float:
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t0) / iters


def gemm(m: int, k: int, n: int):
    """fn() -> GFLOP/s of one fp32 [m, k] @ [k, n] matmul."""
    a, b, out = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)
    return lambda: 2 * m * k * n / seconds(lambda: torch.mm(a, b, out=out), 2) / 1e9


def ours(d: int, width: int, k: int, dead: float = 0.0):
    """fn() running one `train_step` of a fresh TopK SAE state on rotating random batches."""
    from saes.config import SAETrainConfig
    from saes.trainer import make_states, train_step

    cfg = SAETrainConfig(model="random", hooks=["bench"], k=[k], width=width, tokens=BATCH * 10_000)
    state = make_states(cfg, ["bench"], d, "random")[0]
    xs = [torch.randn(BATCH, d) for _ in range(3)]
    n_dead, i = int(dead * width), [0]

    def step():
        i[0] += 1
        state.since_fired[:n_dead] = cfg.dead_tokens  # keep them dead whatever fired
        train_step(state, xs[i[0] % 3], cfg.dead_tokens)

    return step


def sparsify(d: int, width: int, k: int):
    """fn() running what sparsify's Trainer.fit does per step (loss_fn="fvu", no dead latents), or None."""
    try:
        with quiet():  # it prints "Triton not installed" on import
            from sparsify import SaeConfig, SparseCoder
    except ImportError:
        return None
    torch.manual_seed(0)
    coder = SparseCoder(d, SaeConfig(num_latents=width, k=k), "cpu", dtype=torch.float32)
    opt = torch.optim.Adam(coder.parameters(), lr=1e-3)
    xs, i = [torch.randn(BATCH, d) for _ in range(3)], [0]

    def step():
        i[0] += 1
        coder.set_decoder_norm_to_unit_norm()
        coder(xs[i[0] % 3], dead_mask=None).fvu.backward()
        coder.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad()

    return step


def phases(d: int, width: int, k: int, rounds: int) -> dict[str, float]:
    """ms of each phase of train_step's sequence, timed call by call (medians over rounds), plus the encoder
    matmul and the top-k selection of topk_train_step's forward re-run on their own."""
    from saes.config import SAETrainConfig
    from saes.topk_step import ROW_BLOCK_ELEMENTS, top_columns
    from saes.trainer import make_states

    cfg = SAETrainConfig(model="random", hooks=["bench"], k=[k], width=width, tokens=BATCH * 10_000)
    state = make_states(cfg, ["bench"], d, "random")[0]
    sae, opt, x = state.sae, state.optimizer, torch.randn(BATCH, d)
    rows = max(1, min(BATCH, ROW_BLOCK_ELEMENTS // width))
    buf = torch.empty(rows, width)
    out: dict[str, list[float]] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        result = fn()
        out.setdefault(name, []).append((time.perf_counter() - t0) * 1e3)
        return result

    with torch.no_grad():
        norms = sae.W_dec.norm(dim=-1)
    for _ in range(rounds + 1):  # the first round warms up
        step = timed("forward (topk_train_step)", lambda: state.architecture.step(sae, x, None))
        timed("backward", lambda: step["loss"].backward())
        timed("clip_grad_norm_", lambda: torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0))
        timed("Adam step (trainer's default)", opt.step)
        timed("zero_grad", lambda: opt.zero_grad(set_to_none=True))
        with torch.no_grad():
            blocks = [x[i:i + rows] for i in range(0, BATCH, rows)]
            timed("  of forward: encoder matmul + bias + norm scale",
                  lambda: [torch.mm(b, sae.W_enc, out=buf[:len(b)]).add_(sae.b_enc).mul_(norms) for b in blocks])
            timed("  of forward: top-k selection", lambda: [top_columns(buf, k) for _ in blocks])
    return {name: statistics.median(v[1:]) for name, v in out.items()}


def run_shape(args, d: int, width: int, k: int) -> dict:
    contenders = {"ours": ours(d, width, k)}
    if args.dead:
        contenders[f"ours, {args.dead:.0%} dead"] = ours(d, width, k, dead=args.dead)
    if (sp := sparsify(d, width, k)) is not None:
        contenders["sparsify"] = sp
    peaks = {"square [2048]^3": gemm(2048, 2048, 2048), f"encoder [{BATCH},{d}]@[{d},{width}]": gemm(BATCH, d, width)}
    for fn in contenders.values():  # warm-up: allocations, Adam state
        fn(), fn()
    times: dict[str, list[float]] = {name: [] for name in [*peaks, *contenders]}
    for r in range(args.rounds):
        print(f"[bench] d {d} W {width} k {k}: round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
        for name, fn in peaks.items():
            times[name].append(fn())
        for name, fn in contenders.items():
            times[name].append(seconds(fn, args.iters))
    return {"d_in": d, "width": width, "k": k, "gemm_gflops": {n: statistics.median(times[n]) for n in peaks},
            "step_seconds": {n: statistics.median(times[n]) for n in contenders}, "rounds": times,
            "phases_ms": phases(d, width, k, args.rounds)}


def report(results: list[dict]) -> str:
    lines = ["| d_in / W / k | step | ms/step | tokens/s | useful GFLOP/s | share of peak | vs sparsify |",
             "|---|---|---:|---:|---:|---:|---:|"]
    notes = []
    for r in results:
        shape, fpt = f"{r['d_in']} / {r['width']} / {r['k']}", useful_flops_per_token(r["d_in"], r["width"], r["k"])
        peak = max(r["gemm_gflops"].values())
        base = r["step_seconds"].get("sparsify")
        for name, sec in r["step_seconds"].items():
            gflops = BATCH / sec * fpt / 1e9
            vs = f"{base / sec:.2f}x" if base else "-"
            lines.append(f"| {shape} | {name} | {sec * 1e3:.0f} | {BATCH / sec:,.0f} | {gflops:.1f} | "
                         f"{gflops / peak:.1%} | {vs} |")
        notes.append(f"{shape}: fp32 matmul " + ", ".join(f"{n} {g:.1f}" for n, g in r["gemm_gflops"].items())
                     + f" GFLOP/s (peak = the larger); useful FLOPs/token 2*d*W + 10*k*d = {fpt:,}")
        notes.append(f"{shape}: phases of ours (ms): "
                     + "; ".join(f"{n.strip()} {ms:.0f}" for n, ms in r["phases_ms"].items()))
    return "\n".join(lines + [""] + notes)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shapes", nargs="+", default=["576x16384x64", "128x4096x32"], help="d_in x width x k")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iters", type=int, default=2, help="steps per contender per round")
    p.add_argument("--dead", type=float, default=0.0, help="also time ours with this share of latents dead")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = [run_shape(args, *map(int, s.split("x"))) for s in args.shapes]
    table = report(results)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, medians of "
          f"{args.rounds} rounds x {args.iters} steps\n\n{table}")
    if args.out:
        args.out.write_text(json.dumps({"threads": torch.get_num_threads(), "results": results, "table": table},
                                       indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
