"""How fast the app shows a feature page of a 16,384-latent SAE (goal: under a second), over HTTP as a browser
gets it, and what the indexed feature store saves against one JSON file of all latents (the layout SAE-Dashboard
and our first version used), measured side by side.

    python tests/benchmarks/bench_app.py [--runs runs/bench-app] [--pages 30]

Trains the SAE on first use (pythia-mini, blocks.2.hook_resid_post, 16,384 latents, k 32; a few minutes).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

HOOK_DIR = "sae/saes/blocks.2.hook_resid_post-k32"


def ensure_sae(runs: Path) -> Path:
    from saes import SAETrainConfig, train_sae

    if not (runs / HOOK_DIR / "features.json").exists():
        train_sae(SAETrainConfig(width=16_384, tokens=128 * 1024, batch_size=2048, out=str(runs / "sae")))
    return runs / HOOK_DIR


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=Path("runs/bench-app"))
    ap.add_argument("--pages", type=int, default=30)
    args = ap.parse_args()
    sae_dir = ensure_sae(args.runs)

    from gradio_client import Client

    from apps.app import launch
    from saes.feature_store import FeatureStore

    t = time.perf_counter()
    store = FeatureStore(sae_dir)
    open_store = time.perf_counter() - t
    alive = [i for i, a in enumerate(store.alive) if a]
    # the single-file layout: every latent's statistics in one JSON document, parsed to show one page
    whole = dict(store.summary, latents={str(i): store.latent(i) for i in alive})
    single = args.runs / "single-file-features.json"
    single.write_text(json.dumps(whole))
    t = time.perf_counter()
    one_page = json.loads(single.read_text())["latents"][str(alive[0])]
    open_single = time.perf_counter() - t
    assert one_page == store.latent(alive[0])

    app = launch(args.runs, port=7871, block=False)
    client = Client("http://127.0.0.1:7871/", verbose=False)
    rel = HOOK_DIR
    random.seed(0)
    picks = random.sample(alive, min(args.pages, len(alive)))
    t = time.perf_counter()
    client.predict(rel, picks[0], api_name="/feature_page")  # first page: summary, decoder and plotly load
    first = time.perf_counter() - t
    times = []
    for latent in picks[1:]:
        t = time.perf_counter()
        page = client.predict(rel, latent, api_name="/feature_page")
        times.append(time.perf_counter() - t)
        assert f"latent {latent}" in page[0]
    app.close()
    result = {
        "d_sae": store.d_sae, "alive": len(alive), "pages": len(times),
        "first_page_s": round(first, 3), "page_median_s": round(statistics.median(times), 4),
        "page_max_s": round(max(times), 4),
        "open_indexed_store_s": round(open_store, 4), "open_single_json_s": round(open_single, 4),
        "single_json_mib": round(single.stat().st_size / 2**20, 1),
        "single_over_indexed": round(open_single / open_store, 1),
    }
    print(json.dumps(result, indent=1))
    (args.runs / "bench-app.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
