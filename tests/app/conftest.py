"""A runs directory as the CLI leaves it: a short real SAE run on each zoo model (with feature statistics), two
circuits of pythia-mini on add_sub, a CircuitLoRA allocation between them, an unlearning selection, and short
decoding-order and steering runs. One SAE copy has tokens that are HTML (as a hub tokenizer's vocabulary can)
to prove they are escaped."""

import json
import shutil
import socket

import pytest
from filelock import FileLock

XSS_TOKEN = "<script>alert('x')</script>"
XSS_ATTR = '"><img src=x onerror=alert(1)>'
SAE = "blocks.2.hook_resid_post-k8"


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory, worker_id):
    """Built once per test session: xdist workers share it through a lock (the app only reads it)."""
    if worker_id == "master":
        return build_runs(tmp_path_factory.mktemp("runs"))
    root = tmp_path_factory.getbasetemp().parent / "app-runs"
    with FileLock(f"{root}.lock"):
        if not (root / ".built").exists():
            build_runs(root)
            (root / ".built").touch()
    return root


def build_runs(root):
    from circuits.allocation import allocate
    from circuits.discovery import DiscoverConfig, discover, write_circuit
    from interp.finetune import FinetuneConfig, target_modules
    from interp.loading import load_model
    from saes import SAETrainConfig, train_sae
    from saes.feature_store import FeatureStore, write_features
    from saes.steer_eval import SteerEvalConfig, steer_eval

    root.mkdir(parents=True, exist_ok=True)
    # a short steering comparison first: the SAEs it trains are then older than the ones below, which the app opens
    steer_eval(SteerEvalConfig(sae_tokens=4096, per_concept=1, prompts=2, n_tokens=4, ar_strengths=[0.0, 32.0],
                               diffusion_amps=[0.0, 64.0], out=str(root / "dlm-steer")), show_progress=False)
    short = dict(k=[8], tokens=16 * 1024, batch_size=1024, lr=3e-3, eval_tokens=4096, feature_tokens=4096)
    for model in ("pythia-mini", "mdlm-mini"):
        train_sae(SAETrainConfig(model=model, out=str(root / "sae" / model), **short), show_progress=False)
    # the same SAE, its stored contexts and logit tokens rewritten to HTML-looking tokens
    src, dst = root / "sae" / "pythia-mini" / "saes" / SAE, root / "sae-html" / "saes" / SAE
    shutil.copytree(src.parent.parent, dst.parent.parent)
    store = FeatureStore(dst)
    stats = dict(store.summary, latents={})
    for i, alive in enumerate(store.alive):
        if alive:
            entry = store.latent(i)
            for ctx in entry["top"]:
                ctx["tokens"][0], ctx["tokens"][ctx["pos"]] = XSS_ATTR, XSS_TOKEN
            entry["logits"]["positive"][0][0] = XSS_TOKEN
            stats["latents"][str(i)] = entry
    write_features(stats, dst)

    found = {}
    for method in ("eap-ig", "eap"):
        cfg = DiscoverConfig(method=method, n=40, n_eval=40, curve=())
        found[method] = discover(cfg).circuit
        write_circuit(found[method], root / "circuits" / f"add_sub-{method}")
    model = load_model("pythia-mini", bridge=False).model
    alloc = allocate(found["eap-ig"], found["eap"], model, target_modules(FinetuneConfig(), model), 4, 16)
    (root / "circuit-lora").mkdir()
    (root / "circuit-lora" / "allocation.json").write_text(json.dumps(alloc.to_dict()))

    # an unlearning run's feature selection (stage 1 of SSPU on the pythia-mini SAE)
    from saes.train import load_sae
    from saes.unlearning import UnlearnConfig, selection_json, training_data
    from saes.unlearning.select import select

    loaded = load_model("pythia-mini")
    data = training_data(loaded.tokenizer, UnlearnConfig())
    sae = load_sae(src)
    sel = select(loaded.bridge, {2: ("blocks.2.hook_resid_post", sae)}, [(data.forget[0][:64], data.forget[1][:64])],
                 [(r[0][:64], r[1][:64]) for r in data.retain], 4)
    (root / "unlearn").mkdir()
    (root / "unlearn" / "selection.json").write_text(json.dumps(selection_json(sel, src)))

    # a decoding-order run of mdlm-mini through its SAE
    from saes.decoding_order import OrderConfig, decoding_order

    decoding_order(OrderConfig(sae=str(root / "sae" / "mdlm-mini"), layers=[2], n=4, gen_length=4, permutations=20,
                               trajectories=2, out=str(root / "dlm-order")), show_progress=False)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def served(runs_dir):
    """The app on a free localhost port, for the whole session."""
    from apps.app import launch

    port = free_port()
    app = launch(runs_dir, port=port, block=False)
    yield f"http://127.0.0.1:{port}/", runs_dir
    app.close()
