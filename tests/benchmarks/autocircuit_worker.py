"""Score a GPT-NeoX zoo model's edges with the peer tool auto-circuit (1.0.1).

Runs INSIDE the private venv built by tests/benchmarks/autocircuit_env.sh
(transformer-lens 2.x, transformers 4.x), never in the project's own environment:

    runs/venv-autocircuit/bin/python tests/benchmarks/autocircuit_worker.py IN.pt OUT.json

IN.pt is a torch.save'd dict:
    model_dir       Hugging Face save_pretrained directory of a GPTNeoXForCausalLM
    clean, corrupted  LongTensor [N, T] (no padding, same T)
    answers, wrong_answers  LongTensor [N]
    batch_size      int
    edges           our edge names, in our order (circuits.graph.Graph(...).edges)
    num_threads     optional int, torch threads (default 1)
    isolate         optional bool (default True): make each measured run in a fresh
                    child process (this script with --run KEY), so its peak RSS is not
                    hidden by memory an earlier run left in the allocator
    repeats         optional int (default 1): further identical calls after the measured
                    one, timed as seconds_warm (min)

OUT.json:
    {"logit_max_abs_diff": float, "versions": {...},
     "runs": {"eap": {"seconds", "peak_mib", "seconds_warm", "grad_accumulations",
                      "scores": {our_edge: float}, ...}, "eap_ig": {...}},
     "unmapped_edges": [...], "missing_edges": [...], "notes": {...}}

Scores are auto-circuit's own: the gradient of its loss (-mean logit difference
per batch) with respect to the edge masks, where mask 0 keeps the clean
activation and mask 1 substitutes the corrupted one, accumulated (summed) over
batches and, for the IG variant, over the integrated_grad_samples + 1 mask
values 0, 1/n, ..., 1.  So an edge's score is ~ (clean - corrupted) . dLD/dx,
the negative of the usual EAP convention; compare by |score|.  Divide by
`grad_accumulations` to get a per-batch mean.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # auto-circuit's progress bars

import torch  # noqa: E402


# --------------------------------------------------------------------------- memory
def _rss_bytes() -> int:
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:  # fall back to /proc
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Sample the process RSS every `interval` s in a background thread."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.base = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.base = _rss_bytes()
        self.peak = self.base
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def peak_mib(self) -> float:
        return (self.peak - self.base) / 2**20


# --------------------------------------------------------------------------- model
def read_neox_config(model_dir: str) -> dict:
    """The architecture numbers from config.json, in both the transformers 4.x and
    5.x spellings (5.x moved the rotary settings into `rope_parameters`)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    rope = c.get("rope_parameters") or {}
    pct = rope.get("partial_rotary_factor", c.get("partial_rotary_factor", c.get("rotary_pct", 0.25)))
    theta = rope.get("rope_theta", c.get("rope_theta", c.get("rotary_emb_base", 10000.0)))
    if rope.get("rope_type", "default") != "default" or c.get("rope_scaling"):
        raise SystemExit(f"unsupported rope scaling in {model_dir}: {rope or c.get('rope_scaling')}")
    if c.get("model_type") != "gpt_neox":
        raise SystemExit(f"expected a gpt_neox model, got {c.get('model_type')}")
    d_model, n_heads = c["hidden_size"], c["num_attention_heads"]
    d_head = d_model // n_heads
    return {
        "n_layers": c["num_hidden_layers"],
        "n_heads": n_heads,
        "d_model": d_model,
        "d_head": d_head,
        "d_mlp": c["intermediate_size"],
        "d_vocab": c["vocab_size"],
        "n_ctx": c.get("max_position_embeddings", 2048),
        "eps": c.get("layer_norm_eps", 1e-5),
        "act_fn": c.get("hidden_act", "gelu"),
        "rotary_pct": float(pct),
        "rotary_dim": int(d_head * float(pct)),
        "rotary_base": float(theta),
        "parallel": bool(c.get("use_parallel_residual", True)),
        "attention_bias": bool(c.get("attention_bias", True)),
        "tied": bool(c.get("tie_word_embeddings", False)),
    }


def load_hf(model_dir: str, arch: dict):
    from transformers import AutoConfig, AutoModelForCausalLM

    # transformers 4.x does not read 5.x's `rope_parameters`; state the values.
    cfg = AutoConfig.from_pretrained(model_dir)
    cfg.rotary_pct = arch["rotary_pct"]
    cfg.rotary_emb_base = arch["rotary_base"]
    cfg.rope_theta = arch["rotary_base"]
    cfg.partial_rotary_factor = arch["rotary_pct"]
    hf = AutoModelForCausalLM.from_pretrained(model_dir, config=cfg, dtype=torch.float32)
    hf.eval()
    rot = getattr(getattr(hf, "gpt_neox", None), "rotary_emb", None)
    if rot is not None and hasattr(rot, "inv_freq"):
        assert 2 * rot.inv_freq.numel() == arch["rotary_dim"], (rot.inv_freq.shape, arch)
    return hf


def build_tl(hf, arch: dict):
    """A transformer_lens 2.x HookedTransformer computing the same function as `hf`,
    configured for auto-circuit's factorized, separate-q/k/v edge patching."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_neox_weights

    if not arch["parallel"]:
        raise SystemExit("this worker handles parallel-residual GPT-NeoX only")
    if arch["act_fn"] not in ("gelu", "gelu_new", "relu", "silu", "gelu_fast"):
        raise SystemExit(f"unsupported activation {arch['act_fn']}")
    cfg = HookedTransformerConfig(
        n_layers=arch["n_layers"],
        n_heads=arch["n_heads"],
        d_model=arch["d_model"],
        d_head=arch["d_head"],
        d_mlp=arch["d_mlp"],
        d_vocab=arch["d_vocab"],
        d_vocab_out=arch["d_vocab"],
        n_ctx=arch["n_ctx"],
        act_fn=arch["act_fn"],
        eps=arch["eps"],
        normalization_type="LN",
        positional_embedding_type="rotary",
        rotary_dim=arch["rotary_dim"],
        rotary_base=arch["rotary_base"],
        rotary_adjacent_pairs=False,  # NeoX: rotate halves, not interleaved pairs
        parallel_attn_mlp=True,
        original_architecture="GPTNeoXForCausalLM",
        default_prepend_bos=False,
        tokenizer_prepends_bos=False,
        device="cpu",
        dtype=torch.float32,
        # what auto-circuit's factorized / separate_qkv graph needs (cf. its load_tl_model)
        use_attn_result=True,
        use_split_qkv_input=True,
        use_hook_mlp_in=True,
    )
    tl = HookedTransformer(cfg, tokenizer=None, move_to_device=True)
    state = convert_neox_weights(hf, cfg)
    if not arch["attention_bias"]:  # the converter reads the biases unconditionally
        raise SystemExit("attention_bias=false not handled")
    # No layer-norm folding, centring or bias folding: keep every node's output as in HF.
    tl.load_and_process_state_dict(
        {k: v.detach().clone() for k, v in state.items()},
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
    tl.eval()
    for p in tl.parameters():
        p.requires_grad_(False)
    return tl


@torch.no_grad()
def logit_max_abs_diff(hf, tl, tokens: torch.Tensor, batch_size: int) -> float:
    worst = 0.0
    for i in range(0, tokens.shape[0], batch_size):
        x = tokens[i : i + batch_size]
        a = hf(input_ids=x).logits
        b = tl(x, return_type="logits")
        worst = max(worst, (a - b).abs().max().item())
    return worst


# --------------------------------------------------------------------------- names
def ac_node_to_ours(name: str) -> str | None:
    """auto-circuit node name -> our node name (with the q/k/v letter kept apart)."""
    if name == "Resid Start":
        return "input"
    if name == "Resid End":
        return "logits"
    if name.startswith("MLP "):
        return f"m{int(name[4:])}"
    if name.startswith("A"):
        parts = name[1:].split(".")
        if len(parts) == 2:
            return f"a{int(parts[0])}.h{int(parts[1])}"
        if len(parts) == 3 and parts[2] in ("Q", "K", "V"):
            return f"a{int(parts[0])}.h{int(parts[1])}<{parts[2].lower()}>"
    return None


def ac_edge_to_ours(edge) -> str | None:
    src, dst = ac_node_to_ours(edge.src.name), ac_node_to_ours(edge.dest.name)
    if src is None or dst is None or "<" in src:
        return None
    return f"{src}->{dst}"


# --------------------------------------------------------------------------- main
def versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("auto-circuit", "transformer-lens", "transformers", "torch", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    out["python"] = sys.version.split()[0]
    return out


def run_specs() -> tuple[dict, list[str], list[str]]:
    """The scoring calls to make, keyed by run name; and auto-circuit's answer
    functions (read from the installed signature) and the KL-like ones among them."""
    import inspect
    import typing

    from auto_circuit.prune_algos.mask_gradient import mask_gradient_prune_scores

    sig = inspect.signature(mask_gradient_prune_scores)
    answer_fns = [str(a) for a in typing.get_args(sig.parameters["answer_function"].annotation)]
    kl_fns = [a for a in answer_fns if "kl" in a.lower()]
    specs = {
        "eap": dict(answer_function="avg_diff", mask_val=0.0),
        "eap_ig": dict(answer_function="avg_diff", integrated_grad_samples=5),
    }
    if kl_fns:  # (iii) only if this auto-circuit offers a KL objective for mask gradients
        specs["eap_ig_kl"] = dict(answer_function=kl_fns[0], integrated_grad_samples=5)
    return specs, answer_fns, kl_fns


class Setup:
    """Everything a scoring call needs, built from the input dict."""

    def __init__(self, spec: dict, check_logits: bool):
        from auto_circuit.data import PromptDataLoader, PromptDataset
        from auto_circuit.utils.graph_utils import patchable_model

        clean = spec["clean"].long()
        corrupted = spec["corrupted"].long()
        answers = spec["answers"].long().reshape(-1)
        wrong = spec["wrong_answers"].long().reshape(-1)
        self.n, self.seq = clean.shape
        assert corrupted.shape == clean.shape, (corrupted.shape, clean.shape)
        assert answers.shape == (self.n,) and wrong.shape == (self.n,)
        self.bs = min(int(spec["batch_size"]), self.n)
        # auto-circuit's PromptDataLoader always drops the last incomplete batch.
        self.n_used = (self.n // self.bs) * self.bs

        arch = read_neox_config(spec["model_dir"])
        hf = load_hf(spec["model_dir"], arch)
        tl = build_tl(hf, arch)
        self.logit_diff = logit_max_abs_diff(hf, tl, clean, self.bs) if check_logits else None
        del hf

        dataset = PromptDataset(
            clean, corrupted,
            [a.reshape(1) for a in answers],  # one answer per prompt -> [B, 1] after collate
            [w.reshape(1) for w in wrong],
        )
        self.loader = PromptDataLoader(dataset, seq_len=None, diverge_idx=0, batch_size=self.bs,
                                       shuffle=False)
        self.model = patchable_model(
            tl, factorized=True, slice_output="last_seq", seq_len=None, separate_qkv=True,
            device=torch.device("cpu"),
        )

    def score(self, kw: dict):
        from auto_circuit.prune_algos.mask_gradient import mask_gradient_prune_scores

        return mask_gradient_prune_scores(self.model, self.loader, None, grad_function="logit", **kw)

    def measured(self, kw: dict, repeats: int) -> dict:
        """One cold measured call (time + peak RSS growth), then `repeats` more timed
        calls; returns the first call's scores keyed by auto-circuit edge name."""
        import gc

        gc.collect()
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            ps = self.score(kw)
            secs = time.perf_counter() - t0
        warm = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            self.score(kw)
            warm.append(time.perf_counter() - t0)
        n_batches = self.n_used // self.bs
        return {
            "seconds": secs,
            "peak_mib": mem.peak_mib,
            "seconds_warm": min(warm) if warm else None,
            "kwargs": {"grad_function": "logit", **kw},
            # backward passes whose mask gradients were summed into the scores
            "grad_accumulations": n_batches * ((kw.get("integrated_grad_samples") or 0) + 1),
            "ac_scores": {e.name: float(e.prune_score(ps)) for e in self.model.edges},
        }


def child(key: str, inp: str, out_path: str) -> int:
    """One run in a fresh process, so its RSS growth is not hidden by memory that an
    earlier run left in the allocator."""
    spec = torch.load(inp, weights_only=True)
    torch.set_num_threads(int(spec.get("num_threads", 1)))
    torch.manual_seed(0)
    setup = Setup(spec, check_logits=False)
    kw = run_specs()[0][key]
    res = setup.measured(kw, int(spec.get("repeats", 1)))
    with open(out_path, "w") as f:
        json.dump(res, f)
    return 0


def edge_map(setup, our_edges: list[str]) -> tuple[dict, list, list]:
    """Our edge name -> auto-circuit's, with the edges only one side has."""
    ours_set = set(our_edges)
    ac_of, unmapped = {}, []
    for e in sorted(setup.model.edges, key=lambda e: e.name):
        name = ac_edge_to_ours(e)
        if name is None or name not in ours_set:
            unmapped.append(e.name)
        else:
            assert name not in ac_of, f"two auto-circuit edges map to {name}"
            ac_of[name] = e.name
    return ac_of, unmapped, [e for e in our_edges if e not in ac_of]


def run_all(setup, inp: str, specs: dict, repeats: int, isolate: bool, ac_of: dict, our_edges: list[str]) -> dict:
    """Score with each run spec, each in a fresh process when isolated, keyed by our edge names."""
    runs = {}
    for key, kw in specs.items():
        if isolate:
            import subprocess
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                part = os.path.join(tmp, f"{key}.json")
                subprocess.run([sys.executable, os.path.abspath(__file__), "--run", key, inp, part],
                               check=True)
                with open(part) as f:
                    res = json.load(f)
        else:
            res = setup.measured(kw, repeats)
        ac_scores = res.pop("ac_scores")
        res["scores"] = {name: ac_scores[ac_of[name]] for name in our_edges if name in ac_of}
        runs[key] = res
        log(f"{key}: {res['seconds']:.3f} s (warm {res['seconds_warm'] or float('nan'):.3f} s), "
            f"peak +{res['peak_mib']:.1f} MiB")
    return runs


def notes(vers: dict, answer_fns, kl_fns) -> dict:
    return {
        "kl_div": (f"ran as eap_ig_kl with answer_function={kl_fns[0]!r}" if kl_fns else
                   "not run: mask_gradient_prune_scores in auto-circuit "
                   f"{vers['auto-circuit']} accepts answer_function {answer_fns} only "
                   "(no KL divergence)"),
        "sign": "score = d(-mean logit diff)/d(mask), mask 0 = clean, 1 = corrupted "
                "activation, i.e. (clean - corrupted) . dLD/d(input); summed over batches "
                "(and IG mask values): divide by grad_accumulations for a mean",
        "eap_ig": "auto-circuit's IG interpolates all edge masks together (0, 1/n, ..., 1; "
                  "n+1 points incl. both ends, summed, not averaged), i.e. every edge's "
                  "input moves between clean and corrupted source outputs; it does not "
                  "interpolate the input embeddings",
        "ablation": "AblationType.RESAMPLE from the corrupted prompts (clean_corrupt='corrupt')",
    }


def main(argv: list[str]) -> int:
    if len(argv) == 5 and argv[1] == "--run":
        return child(argv[2], argv[3], argv[4])
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    inp, out_path = argv[1], argv[2]
    spec = torch.load(inp, weights_only=True)
    torch.set_num_threads(int(spec.get("num_threads", 1)))
    torch.manual_seed(0)
    isolate = bool(spec.get("isolate", True))
    repeats = int(spec.get("repeats", 1))
    vers = versions()
    our_edges: list[str] = list(spec["edges"])

    setup = Setup(spec, check_logits=True)
    diff = setup.logit_diff
    log(f"HF vs HookedTransformer logits: max |diff| = {diff:.3g}")
    if not diff < 1e-3:
        raise SystemExit(f"weight conversion check failed: max |logit diff| = {diff}")
    if setup.n_used < setup.n:
        log(f"note: {setup.n - setup.n_used} of {setup.n} prompts dropped (drop_last, batch {setup.bs})")

    ac_of, unmapped, missing = edge_map(setup, our_edges)
    specs, answer_fns, kl_fns = run_specs()
    runs = run_all(setup, inp, specs, repeats, isolate, ac_of, our_edges)
    result = {
        "logit_max_abs_diff": diff, "versions": vers, "runs": runs,
        "unmapped_edges": unmapped, "missing_edges": missing,
        "n_prompts": setup.n, "n_prompts_used": setup.n_used, "batch_size": setup.bs, "seq_len": setup.seq,
        "n_autocircuit_edges": len(setup.model.edges), "n_mapped_edges": len(ac_of),
        "measurement": {
            "isolated_processes": isolate,
            "seconds": "first scoring call (wall, perf_counter)"
                       + (" in a fresh process per run, after model load" if isolate else ""),
            "seconds_warm": f"min over {repeats} further identical calls in the same process",
            "peak_mib": "peak RSS (sampled every 5 ms) minus RSS just before the first call",
            "num_threads": torch.get_num_threads(),
        },
        "notes": notes(vers, answer_fns, kl_fns),
    }
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    log(f"mapped {len(ac_of)}/{len(our_edges)} edges, {len(unmapped)} unmapped, "
        f"{len(missing)} missing -> {out_path}")
    return 0


def log(msg: str) -> None:
    print(f"[autocircuit_worker] {msg}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
