"""Every command on a real model nobody here wrote: SmolLM2-135M-Instruct (Llama family, grouped-query attention).

    interp zoo fetch smollm2 shakespeare        # once: the model and real text into ~/.cache/interp
    python tests/benchmarks/smollm2.py          # ~1 hour on 2 CPU cores; writes docs/results/smollm2.md

1. `eval`: our exact-match accuracy per task against plain `transformers` greedy `generate`, judged on text,
   prompt by prompt (the two must agree on every example);
2. `train-sae` at a middle layer on Shakespeare (EV, delta CE, tokens/s);
3. `circuits discover --task ioi` (faithfulness of the 5 % circuit);
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
            text, want = tok.decode(new), f" {e.label}"
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


def main() -> None:
    from interp.fetch import SMOLLM2_DIR, cache_root
    from interp.tasks import ARITHMETIC

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(cache_root() / SMOLLM2_DIR))
    p.add_argument("--dataset", default=str(cache_root() / "text" / "shakespeare.jsonl"))
    p.add_argument("--out", default="runs/smollm2")
    p.add_argument("--n", type=int, default=50, help="eval prompts per task")
    p.add_argument("--layer", type=int, default=15)
    p.add_argument("--sae-tokens", type=int, default=61_440)
    p.add_argument("--report", default=str(ROOT / "docs" / "results" / "smollm2.md"))
    args = p.parse_args()
    out, model, log = Path(args.out), args.model, []
    for path in (model, args.dataset):
        if not Path(path).exists():
            raise SystemExit(f"{path} is missing: run `interp zoo fetch smollm2 shakespeare` first")

    start = time.perf_counter()
    agreement = reference_agreement(model, [*ARITHMETIC, "ioi"], args.n)
    log.append(("eval vs transformers generate (in process)", time.perf_counter() - start))
    run(["eval", "--model", model, "--task", "add_sub", "--task", "ioi", "--n", str(args.n)], log)

    hook = f"blocks.{args.layer}.hook_resid_post"
    sae_s = run(["train-sae", "--model", model, "--dataset", args.dataset, "--hook", hook, "--context-size", "128",
                 "--tokens", str(args.sae_tokens), "--out", str(out / "sae"), "--overwrite"], log)
    sae = next(iter(json.loads((out / "sae" / "metrics.json").read_text()).values()))

    run(["circuits", "discover", "--model", model, "--task", "ioi", "--n", "32", "--n-eval", "32",
         "--batch-size", "16", "--top-percent", "5", "--out", str(out / "circuits" / "ioi"), "--overwrite"], log)
    circuit = json.loads((out / "circuits" / "ioi" / "circuit.json").read_text())["info"]

    run(["circuit-lora", "--model", model, "--task", "add_sub", "--epochs", "0.1", "--probe-steps", "4",
         "--n-circuit", "8", "--out", str(out / "circuit-lora"), "--overwrite"], log)
    lora = json.loads((out / "circuit-lora" / "results.json").read_text())["rows"]

    run(["unlearn", "--model", model, "--forget", "mul_div", "--retain", "add_sub", "--sae", str(out / "sae"),
         "--layer", str(args.layer), "--features", "8", "--forget-text", "prompts", "--steps", "20",
         "--n-eval", "20", "--relearn-draws", "1", "--out", str(out / "unlearn"), "--overwrite"], log)
    unlearn = json.loads((out / "unlearn" / "report.json").read_text()) if (out / "unlearn" / "report.json").exists() else {}

    start = time.perf_counter()
    app = app_check(out)
    log.append(("app: run listing and circuit view over HTTP", time.perf_counter() - start))

    report = {"model": model, "agreement": agreement, "sae": sae, "sae_seconds": sae_s,
              "ioi": {k: circuit.get(k) for k in ("faithfulness", "n_examples", "attribution_seconds")},
              "circuit_lora": lora, "unlearn": unlearn, "app": app, "commands": log}
    (out / "benchmark.json").write_text(json.dumps(report, indent=1, default=str))
    write_report(report, args, Path(args.report))


def write_report(r: dict, args, path: Path) -> None:
    rows = ["| task | n | ours (exact match) | transformers generate | disagree |", "|---|---|---|---|---|"]
    for task, a in r["agreement"].items():
        rows.append(f"| {task} | {a['n']} | {100 * a['ours'] / a['n']:.1f} % | {100 * a['generate'] / a['n']:.1f} % "
                    f"| {len(a['disagree'])} |")
    cmds = ["| command | seconds |", "|---|---|"] + [f"| `{c}` | {s:.0f} |" for c, s in r["commands"]]
    text = f"""# SmolLM2-135M-Instruct: every command on a real model

Made by `python tests/benchmarks/smollm2.py --n {args.n} --layer {args.layer} --sae-tokens {args.sae_tokens}` on
{datetime.date.today()} (2 CPU cores), after `interp zoo fetch smollm2 shakespeare`. Raw numbers:
`{Path(args.out) / 'benchmark.json'}`.

## Accuracy against plain transformers

Test split, greedy decoding. "ours" is `interp eval` (one teacher-forced pass, interp/answers.py); "generate" is
`model.generate` prompt by prompt, judged on the decoded text (the answer, then no more of its word).

{chr(10).join(rows)}

## Other commands

- SAE at `blocks.{args.layer}.hook_resid_post` on Shakespeare ({r['sae']['d_sae']} latents, k {r['sae']['k']}),
  {r['sae']['tokens']:,} training tokens: explained variance {r['sae']['explained_variance']:.3f}, delta CE
  {r['sae']['delta_ce']:.3f} (CE {r['sae']['ce_clean']:.3f} -> {r['sae']['ce_spliced']:.3f}, {r['sae']['eval_tokens']:,}
  held-out tokens), {r['sae']['tokens'] / r['sae']['train_seconds']:.0f} training tokens/s (model forward included).
- IOI circuit (EAP-IG, KL): faithfulness {r['ioi']['faithfulness']} at 5 % of edges, {r['ioi']['n_examples']}
  attribution prompts, {r['ioi']['attribution_seconds']} s of attribution.
- CircuitLoRA (short): {json.dumps(r['circuit_lora'])[:600]}
- Unlearning (short): {json.dumps({k: v for k, v in r['unlearn'].items() if k != 'config'})[:600]}
- App: {r['app']}.

{chr(10).join(cmds)}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
