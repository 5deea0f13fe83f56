"""Side-by-side benchmark of three Top-K SAE trainers on one machine: ours (`saes.train_sae`), sae-lens's
`LanguageModelSAETrainingRunner` and EleutherAI sparsify's `Trainer`.

All three train on the same model, hook (`blocks.2.hook_resid_post`, i.e. the output of GPT-NeoX layer 2),
width, k, token count (rounded up to whole 4096-activation batches), context size 64, 4096 activations per
optimiser step, Adam at the same learning rate, seed 0, on the same generated-corpus token stream. It reports:

* end-to-end training throughput (training activations per second, the LM forward passes included, model
  loading and evaluation excluded; what exactly each tool's clock covers is in its `timed` field);
* explained variance of each trained SAE, measured identically for all three by `saes.evaluate.evaluate_saes`
  on the same held-out corpus tokens (sparsify's SparseCoder is converted into a sae-lens `TopKSAE`);
* the SAE optimiser step alone on random activations (no LM), for each tool (tests/benchmarks/bench_sae_step.py
  times it at any shape, e.g. d_in 576 / 16,384 latents / k 64, against sparsify and the matmul peak);
* fp32 matmul GFLOP/s of this machine and the fraction of it our SAE step reaches.

Run (not collected by pytest; it is a script):

    python tests/benchmarks/bench_train_sae.py [--tokens N] [--width W] [--k K] [--model M] [--out results.json]
    python tests/benchmarks/bench_train_sae.py --random-d256      # random-init 4-layer GPT-NeoX, d_model 256
    python tests/benchmarks/bench_train_sae.py --tokens 20000 --eval-tokens 8192 --threads 1   # smoke run

Runs of a few steps are not representative: ours and sae-lens fill a 65,536-activation shuffle buffer (16 LM
batches) before their first step while sparsify streams its batches in order, and sparsify starts b_dec at the
first batch's mean, which dominates EV over the first few dozen steps. Use the defaults (or more tokens).

Needs `pip install eai-sparsify` for the sparsify part (it is skipped with a note when not installed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TQDM_DISABLE", "1")  # sae-lens and sparsify draw progress bars otherwise

import torch  # noqa: E402

HOOK_LAYER = 2
HOOK = f"blocks.{HOOK_LAYER}.hook_resid_post"  # TransformerLens name (ours, sae-lens)
SPARSIFY_HOOK = f"layers.{HOOK_LAYER}"  # module under model.base_model whose output is the same residual stream
CONTEXT = 64
BATCH = 4096  # activations per optimiser step
MODEL_BATCH = 64  # sequences per LM forward pass (ours' default; sae-lens store_batch_size_prompts)
BUFFER_BATCHES = 16  # ours' shuffle buffer, in optimiser batches; sae-lens gets the same buffer size
SEED = 0
DEAD_TOKENS = 500_000  # ours' default: a latent is dead after this many activations without firing
AUX_COEFFICIENT = 1 / 32  # ours' default AuxK weight


def lr_schedule(args) -> tuple[int, int]:
    """(warm-up steps, final linear-decay steps) of ours' recipe for this run, given to every tool."""
    from saes import SAETrainConfig

    return SAETrainConfig(tokens=args.tokens, batch_size=BATCH).schedule()


def corpus_ids(tokenizer, n_model_batches: int) -> torch.Tensor:
    """[n * 64, 64] token ids: the very model batches ours' activation stream reads (interp/datasets.py)."""
    from interp.corpus import packed_corpus_batch

    return torch.cat([packed_corpus_batch(tokenizer, MODEL_BATCH, CONTEXT, f"activations/{SEED}/{i}")
                      for i in range(n_model_batches)])


def tokens_dataset(ids: torch.Tensor):
    import datasets

    return datasets.Dataset.from_dict({"input_ids": ids.tolist()})


# ----------------------------------------------------------------------------------------------- the tools


def bench_ours(args, work: Path) -> dict:
    from saes import SAETrainConfig, train_sae

    cfg = SAETrainConfig(model=args.model_path, hooks=[HOOK], k=[args.k], width=args.width, tokens=args.tokens,
                         context_size=CONTEXT, batch_size=BATCH, model_batch=MODEL_BATCH,
                         buffer_batches=BUFFER_BATCHES, lr=args.lr, seed=SEED, out=str(work / "ours"),
                         eval_tokens=BATCH, feature_tokens=1024)  # its own eval is redone below, like the others'
    t0 = time.perf_counter()
    result = train_sae(cfg, show_progress=False)
    total = time.perf_counter() - t0
    name = f"{HOOK}-k{args.k}"
    return {"tool": "ours", "sae": result.saes[name], "seconds": result.seconds, "tokens": cfg.steps() * BATCH,
            "call_seconds": total,
            "timed": "SAETrainResult.seconds: train_sae's training loop (activation stream with LM forward "
                     "stopping after block 2, on-the-fly corpus generation and tokenisation, shuffle buffer, "
                     f"SAE steps, checkpoint every {cfg.checkpoint_every} steps); excludes model loading, the "
                     "probe forward, saving, evaluation and feature statistics",
            "notes": "sparse Top-K step (topk_step.py), Adam, grad-norm clip 1.0, sae-lens constant LR with "
                     "warm-up + final 20% linear decay, AuxK 1/32"}


def bench_sae_lens(args, work: Path, ids: torch.Tensor) -> dict:
    from interp.loading import load_model
    from sae_lens import (SAE, LanguageModelSAERunnerConfig, LanguageModelSAETrainingRunner, LoggingConfig,
                          TopKTrainingSAEConfig)

    steps = args.tokens // BATCH
    warm, decay = lr_schedule(args)
    loaded = load_model(args.model_path)  # untimed, like ours' model loading
    cfg = LanguageModelSAERunnerConfig(
        sae=TopKTrainingSAEConfig(d_in=args.d_in, d_sae=args.width, k=args.k, aux_loss_coefficient=AUX_COEFFICIENT,
                                  normalize_activations="expected_average_only_in"),
        model_name=str(args.model_path), hook_name=HOOK, dataset_path="corpus", is_dataset_tokenized=True,
        streaming=False, context_size=CONTEXT, prepend_bos=False,  # the sequences already start with <bos>
        training_tokens=args.tokens, train_batch_size_tokens=BATCH, store_batch_size_prompts=MODEL_BATCH,
        # sae-lens's mixing buffer holds n_batches_in_buffer * context_size activations and keeps half
        n_batches_in_buffer=BUFFER_BATCHES * BATCH // CONTEXT, activations_mixing_fraction=0.5,
        lr=args.lr, lr_scheduler_name="constant", lr_warm_up_steps=warm, lr_decay_steps=decay,
        dead_feature_window=DEAD_TOKENS // BATCH, n_batches_for_norm_estimate=1,  # ours scales from batch 1
        device="cpu", seed=SEED, logger=LoggingConfig(log_to_wandb=False), n_checkpoints=0,
        checkpoint_path=None, output_path=str(work / "sae_lens"), verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "fewer samples than tokens" (it counts rows), tensor copy warnings
        t0 = time.perf_counter()
        runner = LanguageModelSAETrainingRunner(cfg, override_dataset=tokens_dataset(ids),
                                                override_model=loaded.bridge)
        setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        runner.run()
        seconds = time.perf_counter() - t0
        sae = SAE.load_from_disk(str(work / "sae_lens"))  # the saved inference SAE, scaling folded in
    return {"tool": "sae-lens", "sae": sae, "seconds": seconds, "tokens": steps * BATCH, "setup_seconds": setup,
            "timed": "LanguageModelSAETrainingRunner.run(): ActivationsStore over a pre-tokenised datasets.Dataset "
                     "(our TransformerBridge passed as override_model; run_with_cache stops after block 2), the "
                     "1-batch norm estimate, mixing buffer, SAETrainer steps, final fold and save_final_sae; "
                     "excludes model loading and the runner's constructor (setup_seconds)",
            "notes": "dense TopKTrainingSAE.training_forward_pass, same Adam/clip/LR schedule/AuxK as ours; "
                     "bridge passed via override_model worked as is"}


def bench_sparsify(args, work: Path, ids: torch.Tensor) -> dict:
    try:
        with quiet():  # it prints "Triton not installed" on import
            from sparsify import SaeConfig, Trainer, TrainConfig
    except ImportError:
        return {"tool": "sparsify", "skipped": "eai-sparsify is not installed (pip install eai-sparsify)"}
    from transformers import AutoModel

    steps = args.tokens // BATCH
    seqs = BATCH // CONTEXT
    warm, _ = lr_schedule(args)
    with quiet():
        model = AutoModel.from_pretrained(args.model_path, dtype=torch.float32).eval()  # untimed
    cfg = TrainConfig(
        SaeConfig(num_latents=args.width, k=args.k), batch_size=seqs, loss_fn="fvu", optimizer="adam", lr=args.lr,
        lr_warmup_steps=warm, auxk_alpha=AUX_COEFFICIENT, dead_feature_threshold=DEAD_TOKENS,
        hookpoints=[SPARSIFY_HOOK], init_seeds=[SEED], save_every=10**9, log_to_wandb=False,
        save_dir=str(work / "sparsify"), run_name="run")
    dataset = tokens_dataset(ids[: steps * seqs]).with_format("torch")
    precision = torch.get_float32_matmul_precision()
    with quiet():
        t0 = time.perf_counter()
        trainer = Trainer(cfg, dataset, model)
        setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        trainer.fit()
        seconds = time.perf_counter() - t0
    torch.set_float32_matmul_precision(precision)  # fit() sets "high" globally
    coder = trainer.saes[SPARSIFY_HOOK]
    return {"tool": "sparsify", "sae": sparsify_to_sae_lens(coder, args.model_path), "seconds": seconds,
            "tokens": steps * BATCH, "setup_seconds": setup,
            "timed": "Trainer.fit(): DataLoader over a pre-tokenised datasets.Dataset (64 sequences = 4096 "
                     "activations a step, in order, no shuffle buffer), full HF GPTNeoXModel forward with a "
                     "forward hook on layers.2 (no early stop), SAE steps, final save; excludes model loading "
                     "and the Trainer constructor (setup_seconds)",
            "notes": "FVU loss, fused sparse encoder backward, eager embedding_bag decoder (no Triton on CPU), "
                     "unit-norm decoder; Adam (torch) with its linear warm-up then linear decay to 0, no grad clip"}


def sparsify_to_sae_lens(coder, model_path: str):
    """A sae-lens TopKSAE computing what SparseCoder does: relu((x - b_dec) @ W_enc.T + b_enc), top-k, then
    acts @ W_dec + b_dec. sparsify trains on raw activations (FVU is scale-free), so no normalisation."""
    from sae_lens import TopKSAE, TopKSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    cfg = TopKSAEConfig(d_in=coder.d_in, d_sae=coder.num_latents, k=coder.cfg.k, apply_b_dec_to_input=True,
                        rescale_acts_by_decoder_norm=False, normalize_activations="none", dtype="float32",
                        device="cpu", metadata=SAEMetadata(model_name=str(model_path), hook_name=HOOK,
                                                           context_size=CONTEXT, prepend_bos=True))
    sae = TopKSAE(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(coder.encoder.weight.T)
        sae.b_enc.copy_(coder.encoder.bias)
        sae.W_dec.copy_(coder.W_dec)
        sae.b_dec.copy_(coder.b_dec)
        x = coder.b_dec + torch.randn(256, coder.d_in, generator=torch.Generator().manual_seed(1))
        gap = (sae(x) - coder(x).sae_out).abs().max().item()
    if gap > 1e-4 * (1 + x.abs().max().item()):
        raise RuntimeError(f"the sae-lens copy of sparsify's SparseCoder reconstructs differently (max gap {gap})")
    return sae


@contextlib.contextmanager
def quiet():
    """sparsify and transformers print progress lines and bars; keep the report readable. An exception
    still propagates and is printed once the redirection has ended."""
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), contextlib.redirect_stderr(devnull):
        yield


# ----------------------------------------------------------------------------------------------- measurements


def evaluate(model_path: str, saes: dict, eval_tokens: int) -> dict:
    """The same held-out evaluation for every SAE: one evaluate_saes call on one loaded model."""
    from interp.loading import load_model
    from saes.evaluate import evaluate_saes

    loaded = load_model(model_path)
    return evaluate_saes(loaded, {name: (HOOK, sae) for name, sae in saes.items()}, "corpus", CONTEXT,
                         eval_tokens, SEED, MODEL_BATCH)


def timed_loop(fn, iters: int, warmup: int = 2) -> float:
    """Seconds per call of fn() after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t0) / iters


def matmul_gflops(m: int, k: int, n: int, min_seconds: float = 1.0) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    per = timed_loop(lambda: torch.mm(a, b, out=out), 3)
    iters = max(3, int(min_seconds / max(per, 1e-6)))
    return 2 * m * k * n / timed_loop(lambda: torch.mm(a, b, out=out), iters) / 1e9


def random_batches(d_in: int, n: int = 4) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(BATCH, d_in, generator=g) for _ in range(n)]


def step_only(args, iters: int) -> dict[str, float]:
    """Seconds per optimiser step on random [4096, d_in] activations, no LM: each tool's real step code."""
    from saes.config import SAETrainConfig
    from saes.trainer import make_states, train_step

    d_in, xs = args.d_in, random_batches(args.d_in)
    out, i = {}, [0]

    def nxt():
        i[0] += 1
        return xs[i[0] % len(xs)]

    cfg = SAETrainConfig(model="random", hooks=[HOOK], k=[args.k], width=args.width, tokens=BATCH * (iters + 10),
                         lr=args.lr)
    state = make_states(cfg, [HOOK], d_in, "random")[0]
    out["ours"] = timed_loop(lambda: train_step(state, nxt(), cfg.dead_tokens), iters)

    from sae_lens import LanguageModelSAERunnerConfig, LoggingConfig, TopKTrainingSAE, TopKTrainingSAEConfig
    from sae_lens.training.sae_trainer import SAETrainer

    scfg = TopKTrainingSAEConfig(d_in=d_in, d_sae=args.width, k=args.k, aux_loss_coefficient=AUX_COEFFICIENT)
    rcfg = LanguageModelSAERunnerConfig(sae=scfg, training_tokens=BATCH * (iters + 10), lr=args.lr,
                                        logger=LoggingConfig(log_to_wandb=False), checkpoint_path=None,
                                        output_path=None, verbose=False)
    torch.manual_seed(SEED)
    trainer = SAETrainer(cfg=rcfg.to_sae_trainer_config(), sae=TopKTrainingSAE(scfg), data_provider=iter(()))
    out["sae-lens"] = timed_loop(lambda: trainer.step(nxt()), iters)

    try:
        with quiet():
            from sparsify import SaeConfig, SparseCoder
    except ImportError:
        return out
    torch.manual_seed(SEED)
    coder = SparseCoder(d_in, SaeConfig(num_latents=args.width, k=args.k), "cpu", dtype=torch.float32)
    opt = torch.optim.Adam(coder.parameters(), lr=args.lr)

    def sparsify_step():  # what Trainer.fit does per step for loss_fn="fvu", autoencoding, no dead latents
        x = nxt()
        coder.set_decoder_norm_to_unit_norm()
        coder(x, dead_mask=None).fvu.backward()
        coder.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad()

    out["sparsify"] = timed_loop(sparsify_step, iters)
    return out


def useful_flops_per_token(d_in: int, width: int, k: int) -> int:
    """Ours' step: dense encoder 2*d_in*W, plus sparse terms on the k chosen latents: decode (2k*d_in),
    decoder backward (grad of acts and of W_dec rows, 4k*d_in), encoder backward (grad of x and of W_enc
    columns, 4k*d_in). Optimiser, top-k and element-wise work are not counted (AuxK is off: no dead latents)."""
    return 2 * d_in * width + 10 * k * d_in


def make_random_d256(directory: Path) -> Path:
    """A random-init 4-layer GPT-NeoX, d_model 256, with the workbench tokenizer, saved as an HF directory."""
    from interp.architecture import ArchConfig, build_model
    from interp.tokenizer import load_tokenizer

    model = build_model(ArchConfig(d_model=256, n_layers=4, n_heads=4, d_mlp=1024, n_ctx=128, causal=True), SEED)
    model.save_pretrained(directory)
    load_tokenizer().save_pretrained(directory)
    return directory


# ----------------------------------------------------------------------------------------------- report


def report(args, results: dict, metrics: dict, steps: dict, peak: dict) -> tuple[str, dict]:
    base = results.get("sae-lens", {}).get("tokens_per_second")
    lines = ["| tool | tokens/s (end to end) | ratio vs sae-lens | EV | notes |", "|---|---:|---:|---:|---|"]
    for tool, r in results.items():
        if "skipped" in r:
            lines.append(f"| {tool} | - | - | - | skipped: {r['skipped']} |")
            continue
        m = metrics[tool]
        ratio = f"{r['tokens_per_second'] / base:.2f}x" if base else "-"
        note = f"{r['seconds']:.1f} s for {r['tokens']:,} tokens; L0 {m['l0']:.1f}, dCE {m['delta_ce']:.4f}"
        lines.append(f"| {tool} | {r['tokens_per_second']:,.0f} | {ratio} | {m['explained_variance']:.4f} | {note} |")
    fpt = useful_flops_per_token(args.d_in, args.width, args.k)
    lines += ["", f"fp32 matmul on this machine ({torch.get_num_threads()} threads): "
              f"[4096,{args.d_in}]@[{args.d_in},{args.width}] {peak['encoder_shape']:.1f} GFLOP/s, "
              f"[2048,2048]@[2048,2048] {peak['square']:.1f} GFLOP/s",
              "", "| SAE step only (random activations) | ms/step | tokens/s |", "|---|---:|---:|"]
    for tool, sec in steps.items():
        lines.append(f"| {tool} | {sec * 1e3:.1f} | {BATCH / sec:,.0f} |")
    util = {}
    peak_best = max(peak.values())
    if "ours" in steps:
        step_tps = BATCH / steps["ours"]
        util = {"useful_flops_per_token": fpt,
                "formula": "2*d_in*W + 10*k*d_in",
                "step_only_gflops": step_tps * fpt / 1e9,
                "step_only_fraction_of_peak": step_tps * fpt / 1e9 / peak_best}
        if "ours" in results and "tokens_per_second" in results["ours"]:
            e2e = results["ours"]["tokens_per_second"] * fpt / 1e9
            util.update(end_to_end_sae_gflops=e2e, end_to_end_fraction_of_peak=e2e / peak_best)
        lines += ["", f"ours: useful SAE FLOPs/token = 2*d_in*W + 10*k*d_in = {fpt:,}; step alone "
                  f"{util['step_only_gflops']:.1f} GFLOP/s = {util['step_only_fraction_of_peak']:.1%} of the "
                  f"{peak_best:.1f} GFLOP/s matmul peak"
                  + (f"; end to end {util['end_to_end_sae_gflops']:.1f} GFLOP/s = "
                     f"{util['end_to_end_fraction_of_peak']:.1%}" if "end_to_end_sae_gflops" in util else "")]
    return "\n".join(lines), util


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="pythia-mini", help="zoo name or local HF directory")
    p.add_argument("--random-d256", action="store_true", help="benchmark a random-init 4-layer d_model-256 GPT-NeoX")
    p.add_argument("--tokens", type=int, default=200_000, help="training activations (rounded up to 4096s)")
    p.add_argument("--width", type=int, default=4096)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-tokens", type=int, default=65_536, help="held-out tokens for EV")
    p.add_argument("--step-iters", type=int, default=20, help="timed SAE steps in the step-only measurement")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--only", nargs="+", choices=["ours", "sae-lens", "sparsify"], default=None)
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    args.tokens = math.ceil(args.tokens / BATCH) * BATCH  # whole steps: sae-lens floors, ours rounds up
    return args


def run_tools(args, work: Path):
    """Train with each tool, evaluate the SAEs, then time the bare steps and the matmul peak."""
    from interp.loading import load_model

    if args.random_d256:
        args.model = "random-d256"
        args.model_path = str(make_random_d256(work / "random-d256"))
    else:
        args.model_path = load_model(args.model, bridge=False).path
    probe = load_model(args.model_path, bridge=False)
    args.d_in = probe.model.config.hidden_size
    steps = args.tokens // BATCH
    # ours reads model batches 0, 1, ... of the corpus; its buffer over-reads by about BUFFER_BATCHES
    ids = corpus_ids(probe.tokenizer, steps + BUFFER_BATCHES + 4)
    del probe

    results = {}
    for tool in args.only or ["ours", "sae-lens", "sparsify"]:
        print(f"[bench] training with {tool} ...", file=sys.stderr, flush=True)
        r = {"ours": lambda: bench_ours(args, work),
             "sae-lens": lambda: bench_sae_lens(args, work, ids),
             "sparsify": lambda: bench_sparsify(args, work, ids)}[tool]()
        if "seconds" in r:
            r["tokens_per_second"] = r["tokens"] / r["seconds"]
        results[tool] = r
    print("[bench] evaluating ...", file=sys.stderr, flush=True)
    saes = {t: r.pop("sae") for t, r in results.items() if "sae" in r}
    metrics = evaluate(args.model_path, saes, args.eval_tokens) if saes else {}
    print("[bench] step-only and matmul timings ...", file=sys.stderr, flush=True)
    step_times = step_only(args, args.step_iters)
    peak = {"encoder_shape": matmul_gflops(BATCH, args.d_in, args.width), "square": matmul_gflops(2048, 2048, 2048)}
    return results, metrics, step_times, peak


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_train_sae."))
    try:
        results, metrics, step_times, peak = run_tools(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table, util = report(args, results, metrics, step_times, peak)
    print(table)
    if args.out:
        payload = {
            "config": {"model": args.model, "d_in": args.d_in, "hook": HOOK, "width": args.width, "k": args.k,
                       "tokens": args.tokens, "context_size": CONTEXT, "batch_size": BATCH, "lr": args.lr,
                       "seed": SEED, "eval_tokens": args.eval_tokens, "threads": torch.get_num_threads(),
                       "torch": torch.__version__},
            "results": {t: {**r, **({"eval": metrics[t]} if t in metrics else {})} for t, r in results.items()},
            "step_only_seconds": step_times, "matmul_gflops": peak, "utilisation_ours": util, "table": table}
        args.out.write_text(json.dumps(payload, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
