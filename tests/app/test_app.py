"""Every endpoint of the app, called over HTTP with gradio_client against a real runs directory."""

import html
import json
import re
import subprocess
import sys

import pytest
from gradio_client import Client

from .conftest import SAE, XSS_ATTR, XSS_TOKEN

AR, DLM, HTML_SAE = f"sae/pythia-mini/saes/{SAE}", f"sae/mdlm-mini/saes/{SAE}", f"sae-html/saes/{SAE}"
EAP_IG, EAP = "circuits/add_sub-eap-ig/circuit.json", "circuits/add_sub-eap/circuit.json"


@pytest.fixture(scope="module")
def client(served):
    return Client(served[0], verbose=False)


@pytest.fixture(scope="module")
def store(runs_dir):
    from saes.feature_store import FeatureStore

    return FeatureStore(runs_dir / AR)


def plot(value) -> dict:
    return json.loads(value["plot"])


def test_listing_finds_every_run(client):
    runs = client.predict(api_name="/runs")
    steer = {f"dlm-steer/{m}/sae/saes/blocks.2.hook_resid_post-k32" for m in ("mdlm-mini", "pythia-mini")}
    assert {s["location"] for s in runs["saes"]} == {AR, DLM, HTML_SAE} | steer
    assert {s["location"] for s in runs["saes"][-2:]} == steer  # the oldest
    assert {c["location"] for c in runs["circuits"]} == {EAP_IG, EAP}
    assert runs["allocations"] == ["circuit-lora/allocation.json"]
    assert runs["selections"] == ["unlearn/selection.json"]
    assert runs["orders"] == ["dlm-order/order.json"]
    assert runs["steerings"] == ["dlm-steer/steering.json"]
    assert all(s["d_sae"] == 2048 and s["k"] == (32 if s["location"] in steer else 8) for s in runs["saes"])


def test_feature_table_sorted_and_dead_marked(client, store):
    table = client.predict(AR, "density", False, api_name="/feature_table")
    rows = table["data"]
    assert len(rows) == sum(store.alive)
    densities = [r[1] for r in rows]
    assert densities == sorted(densities, reverse=True) and densities[0] > 0
    by_max = client.predict(AR, "max_act", True, api_name="/feature_table")["data"]
    assert [r[2] for r in by_max] == sorted((r[2] for r in by_max), reverse=True)
    assert len(by_max) == min(1000, store.d_sae)  # the table shows the first 1000 by the chosen key
    assert sum(r[4] == "dead" for r in by_max) == min(1000, store.d_sae) - sum(store.alive)


def test_feature_page(client, store):
    latent = max(range(store.d_sae), key=lambda i: store.summary["density"][i])
    page, hist, logits, near = client.predict(AR, latent, api_name="/feature_page")
    entry = store.latent(latent)
    assert f"latent {latent}" in page and "top activations" in page and page.count("activation ") >= 2
    # the maximal token of each context is bold and carries the context's largest activation
    bold = re.findall(r'data-act="([0-9.]+)" style="[^"]*font-weight:700', page)
    assert len(bold) >= len(entry["top"])
    assert float(bold[0]) == pytest.approx(entry["top"][0]["act"], abs=1e-3)
    fig = plot(hist)
    assert f"density {100 * store.summary['density'][latent]:.3f}%" in fig["layout"]["title"]["text"]
    assert sum(fig["data"][0]["y"]) == sum(entry["histogram"]["counts"])
    assert html.escape(entry["logits"]["positive"][0][0]) in logits and "negative logits" in logits
    cosines = [float(c) for c in re.findall(r"<td>([+-][0-9.]+)</td>", near)]
    assert len(cosines) == 8 and cosines == sorted(cosines, reverse=True) and cosines[0] <= 1.0


def test_dead_latent_and_bad_latent(client, store):
    if not all(store.alive):
        page = client.predict(AR, store.alive.index(False), api_name="/feature_page")[0]
        assert "dead" in page
    with pytest.raises(Exception, match="out of range"):
        client.predict(AR, 10**6, api_name="/feature_page")


def test_test_text_and_search_match_the_sae(client, runs_dir):
    from interp.loading import load_model
    from saes.steering import text_activations
    from saes.train import load_sae

    text = "12 plus 7 is 19"
    tokens, acts = text_activations(load_model("pythia-mini"), "blocks.2.hook_resid_post",
                                    load_sae(runs_dir / AR), text)
    latent = int(acts.max(0).values.argmax())
    shown = client.predict(AR, latent, text, api_name="/test_text")
    values = [float(v) for v in re.findall(r'data-act="([0-9.]+)"', shown)]
    assert values == pytest.approx(acts[:, latent].tolist(), abs=1e-3)
    found = client.predict(AR, text, api_name="/search")
    best = acts.max(0).values.topk(5).indices.tolist()
    assert found.startswith("<p><b>most active features:</b> " + f"{best[0]} (")
    assert all(f"<td>{t}</td>" in found for t in tokens[1:])


def test_steering_ar_and_diffusion(client):
    prompt = "12 plus 7 is"
    for sae, knob in ((AR, "strength"), (DLM, "amp")):
        args = lambda v: (sae, 1, prompt, v if knob == "strength" else 0, v if knob == "amp" else 0, "all", 8)
        off = client.predict(*args(0), api_name="/steer")
        cells = re.findall(r"<td>(.*?)</td>", off)
        assert cells[0] == cells[1]  # no steering: identical generations
        on = client.predict(*args(32 if knob == "strength" else 8), api_name="/steer")
        cells = re.findall(r"<td>(.*?)</td>", on)
        assert cells[0] != cells[1], f"{knob} steering changed nothing"
        assert ("diffusion" in on) == (sae == DLM)
    active = client.predict(DLM, 1, prompt, 0, 8, "active", 8, api_name="/steer")
    assert "active positions" in active


def test_circuit_views(client, runs_dir):
    from circuits.circuit import Circuit

    c = Circuit.load(runs_dir / EAP_IG).with_rule(top_percent=5)
    fig, summary = client.predict(EAP_IG, 5, 0, ["q", "k", "v"], api_name="/circuit")
    lines = [t for t in plot(fig)["data"] if t["mode"] == "lines"]
    assert len(lines) == int(c.in_graph.sum()) and f"{int(c.in_graph.sum())} of 463 edges" in summary
    v_only = [t for t in plot(client.predict(EAP_IG, 5, 0, ["v"], api_name="/circuit")[0])["data"] if t["mode"] == "lines"]
    assert len(v_only) == sum(1 for e, k in zip(c.graph.edges, c.in_graph.tolist()) if k and e.qkv in (None, "v"))
    assert len([t for t in plot(client.predict(EAP_IG, 5, 12, ["q", "k", "v"], api_name="/circuit")[0])["data"]
                if t["mode"] == "lines"]) <= 12

    graph, bars, summary = client.predict(EAP_IG, EAP, 5, 0, ["q", "k", "v"], "source", "topk:1", 4, 16,
                                          api_name="/compare")
    assert "Jaccard" in summary and "edges added" in summary
    colours = {t["line"]["color"] for t in plot(graph)["data"] if t["mode"] == "lines"}
    assert colours <= {"#2f855a", "#c53030", "#a0aec0"}
    bar = plot(bars)["data"][0]
    assert len(bar["x"]) == c.graph.n_layers + 1 and bar["marker"]["color"].count("#dd6b20") == 1
    assert "r=16" in bar["text"] and "r=4" in bar["text"]

    alloc = plot(client.predict("circuit-lora/allocation.json", api_name="/allocation"))
    assert "critical" in alloc["layout"]["title"]["text"] and len(alloc["data"][0]["x"]) == c.graph.n_layers + 1


def test_decoding_order_curves_and_trajectory(client, runs_dir):
    result = json.loads((runs_dir / "dlm-order" / "order.json").read_text())
    fig, summary, strategies, prompts, hooks = client.predict("dlm-order/order.json", api_name="/order_curves")
    traces = plot(fig)["data"]
    assert {t["name"] for t in traces} == set(result["strategies"])
    masked = [t for t in traces if t["name"] == "random" and t["xaxis"] == "x"][0]  # row 1, col 1: masked Jaccard
    assert masked["y"] == result["strategies"]["random"]["layers"]["blocks.2.hook_resid_post"]["masked"]["jaccard"]["curve"]
    assert "predict accuracy" in summary and html.escape(result["prediction"]["verdict"]) in summary
    assert [c[0] for c in strategies["choices"]] == list(result["strategies"])
    page = client.predict("dlm-order/order.json", "entropy", "1", "blocks.2.hook_resid_post", api_name="/order_trajectory")
    reads = result["strategies"]["entropy"]["trajectories"]["1"]["reads"]
    assert page.count("<tr>") == len(reads) == 5 and page.count("▢") == 4 + 3 + 2 + 1
    first = reads[-1]["latents"]["blocks.2.hook_resid_post"][0][0][0]
    assert f"#{first}" in page and html.escape(result["prompts"][1]) in page
    with pytest.raises(Exception, match="no trajectory"):
        client.predict("dlm-order/order.json", "entropy", "3", "blocks.2.hook_resid_post", api_name="/order_trajectory")
    with pytest.raises(Exception, match="not an order.json"):
        client.predict(EAP_IG, api_name="/order_curves")


def test_steering_curves(client, runs_dir):
    result = json.loads((runs_dir / "dlm-steer" / "steering.json").read_text())
    fig, table = client.predict("dlm-steer/steering.json", api_name="/steering_curves")
    traces = plot(fig)["data"]
    assert len(traces) == 2
    for trace, m in zip(traces, result["methods"].values()):
        assert trace["x"] == [c["fluency_loss"] for c in m["curve"]] and trace["y"] == [c["concept_gain"] for c in m["curve"]]
    assert table.count("<tr>") == 1 + 4 and html.escape(result["verdict"]) in table
    with pytest.raises(Exception, match="not a steering.json"):
        client.predict("dlm-order/order.json", api_name="/steering_curves")


def test_unlearning_selection(client, runs_dir):
    sel = json.loads((runs_dir / "unlearn" / "selection.json").read_text())
    shown = client.predict("unlearn/selection.json", api_name="/unlearn_features")
    assert "forget features" in shown and "irrelevant features" in shown and "layer 2" in shown
    for f in sel["forget_features"] + sel["irrelevant_features"]:
        assert f"latent {f['latent']} · score {f['score']:+.2f}" in shown
    assert shown.count('class="ctx"') == sum(len(f["top"]) for f in sel["forget_features"] + sel["irrelevant_features"])
    with pytest.raises(Exception, match="not an unlearning selection.json"):
        client.predict(EAP_IG, api_name="/unlearn_features")


def test_html_is_escaped(client, runs_dir):
    from saes.feature_store import FeatureStore

    store = FeatureStore(runs_dir / HTML_SAE)
    latent = store.alive.index(True)
    page, _, logits, _ = client.predict(HTML_SAE, latent, api_name="/feature_page")
    for shown in (page, logits):
        assert "<script" not in shown and "<img" not in shown
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page and "&lt;script&gt;" in logits
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    out = client.predict(AR, 1, XSS_TOKEN + XSS_ATTR, 0, 0, "all", 2, api_name="/steer")
    assert "<script" not in out and "<img" not in out and "&lt;script&gt;" in out


def test_paths_outside_the_runs_dir_are_refused(client):
    for call in (lambda: client.predict("../../etc", 1, api_name="/feature_page"),
                 lambda: client.predict("/etc/passwd", api_name="/allocation"),
                 lambda: client.predict("../selection.json", api_name="/unlearn_features"),
                 lambda: client.predict(EAP_IG, "../" * 8 + "etc/x.json", 5, 0, ["v"], "source", "topk:1", 4, 16,
                                        api_name="/compare")):
        with pytest.raises(Exception, match="outside the runs directory"):
            call()


def test_binds_to_localhost(served):
    assert served[0].startswith("http://127.0.0.1:")


def test_cli_bad_runs_dir(tmp_path):
    r = subprocess.run([sys.executable, "-c", "from interp.cli import main; main()", "app",
                        str(tmp_path / "missing")], capture_output=True,
                       text=True)
    assert r.returncode != 0 and r.stderr.strip().splitlines()[-1].startswith("error: runs directory")
