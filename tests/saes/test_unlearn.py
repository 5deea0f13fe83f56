"""SSPU: feature scores, subspace bases, the constrained update, clamping, the method registry, a tiny
end-to-end run, bad inputs."""

import json

import pytest
import torch

from saes.unlearning import loop
from saes.unlearning.clamp import clamp_fn
from saes.unlearning.config import UnlearnConfig, with_options
from saes.unlearning.data import Batches
from saes.unlearning.hooks import capture, param_names, resid
from saes.unlearning.method import Context
from saes.unlearning.push import KNOWN_FLOOR, control_vector, half_push_recall, known_weights
from saes.unlearning.registry import UNLEARN_METHODS, get_method
from saes.unlearning.select import basis, feature_scores, irrelevant_latents

HOOKS = ["blocks.1.hook_resid_post", "blocks.2.hook_resid_post"]


def fit(method, base, data, names, steps, coef=20.0, u=None, relevant=None, **options):
    """Registered method `method` trained on a bare context at layer 2 (no SAE run needed), with small batches and
    every term at weight 1 unless `options` say otherwise."""
    options = dict(lr=1e-2, batch_size=8, retain_weight=1.0, push_weight="uniform", reg_weight=0.0) | options
    cfg = with_options(UnlearnConfig(steps=steps), **options)
    return loop.train(get_method(method), Context(base, data, names, 2, cfg, coef, u, relevant))


@pytest.fixture(scope="module")
def sae_run(tmp_path_factory):
    from saes import SAETrainConfig, train_sae

    out = tmp_path_factory.mktemp("unlearn") / "sae"
    train_sae(SAETrainConfig(hooks=HOOKS, k=[16], tokens=16 * 1024, batch_size=1024, lr=3e-3, eval_tokens=4096,
                             feature_tokens=4096, out=str(out)), show_progress=False)
    return out


@pytest.fixture(scope="module")
def setup(sae_run):
    from interp.loading import load_model
    from saes.unlearning import load_saes, training_data

    tok = load_model("pythia-mini", bridge=False).tokenizer
    base = load_model("pythia-mini", bridge=False).model.eval()
    saes = load_saes(sae_run, "pythia-mini")
    return base, training_data(tok, UnlearnConfig(forget_text="prompts")), saes


def test_scores_rank_forget_tied_latents_first():
    forget = torch.tensor([[3.0, 1.0, 0.0], [2.0, 1.0, 0.0], [4.0, 1.0, 0.0]])
    retain = torch.tensor([[0.0, 1.0, 2.0], [0.5, 1.0, 3.0], [0.0, 1.0, 2.5]])
    s = feature_scores(forget, retain)
    assert s[0] > 2 and s[1] == 0 and s[2] < -2


def test_irrelevant_latents_by_score_or_by_quiet():
    # latent 0 never fires; 1 fires alike on both domains; 2 barely fires; 3 is a forget feature
    scores, activity = torch.tensor([0.0, 0.05, 0.2, 3.0]), torch.tensor([0.0, 5.0, 0.01, 2.0])
    assert irrelevant_latents(scores, activity, 2, "score") == [1, 2]
    assert irrelevant_latents(scores, activity, 1, "quiet") == [2]


def test_bases_are_orthonormal_and_span_the_directions(setup):
    _, _, saes = setup
    sae = saes[2][1]
    latents = list(range(0, 40, 3))
    q = basis(sae, latents)
    assert q.shape == (sae.cfg.d_in, len(latents))
    assert torch.allclose(q.T @ q, torch.eye(q.shape[1]), atol=1e-5)
    w = sae.W_dec[latents].detach()
    assert (w.T - q @ (q.T @ w.T)).norm() / w.norm() < 1e-5  # every direction lies in the span
    other = sae.W_dec[100].detach()
    assert (other - q @ (q.T @ other)).norm() > 0.1 * other.norm()  # and the span is not everything


def test_only_chosen_parameters_change_and_the_update_stays_in_the_subspace(setup):
    base, data, saes = setup
    sae = saes[2][1]
    relevant = basis(sae, list(range(8)))
    names = param_names(base, [0, 1, 2], "dense_4h_to_h")
    assert len(names) == 6
    kw = dict(u=control_vector(128, 0, basis(sae, list(range(100, 108)))), relevant=relevant)
    free = fit("rmu", base, data, names, 4, **kw)
    held = fit("sspu", base, data, names, 4, reg_weight=1000.0, **kw)
    before = dict(base.named_parameters())
    for model in (free, held):
        for n, p in model.named_parameters():
            assert torch.equal(p, before[n]) == (n not in names), n
    outside = torch.eye(128) - relevant @ relevant.T
    share = lambda m, n: ((outside @ (dict(m.named_parameters())[n] - before[n]).reshape(128, -1)).norm()
                          / (dict(m.named_parameters())[n] - before[n]).norm()).item()
    w = "gpt_neox.layers.2.mlp.dense_4h_to_h.weight"
    assert share(held, w) < 0.5 * share(free, w)


def test_erase_target_shrinks_the_relevant_component_of_forget_activations(setup):
    base, data, saes = setup
    relevant = basis(saes[2][1], list(range(8)))
    names = param_names(base, [0, 1, 2], "dense_4h_to_h")
    erased = fit("sspu", base, data, names, 6, coef=0.0, relevant=relevant, target="erase")
    inputs, mask = data.forget[0][:32], data.forget_mask[:32]

    def relevant_energy(model):
        with torch.no_grad(), capture(model, 2) as h:
            model(input_ids=inputs)
        return ((h[0] @ relevant) ** 2).sum(-1)[mask].mean().item()
    assert relevant_energy(erased) < 0.5 * relevant_energy(base)


def test_stopped_forwards_and_cached_frozen_activations_are_what_full_forwards_give(setup):
    base, data, _ = setup
    ids = data.retain[1][0][:40]
    with torch.no_grad(), capture(base, 2) as full:
        base(input_ids=ids)
    with torch.no_grad(), capture(base, 3) as above:
        stopped = resid(base, 2, ids)
    assert torch.equal(stopped, full[0]) and not above  # the same tensor, and block 3 never ran
    cached, corpus = Batches(data.forget, data.retain, data.corpus).frozen(base, 2)
    rows = torch.tensor([5, 300, 7])
    same = lambda a, b: torch.allclose(a, b, rtol=0, atol=1e-5)  # bit-equal here; batch size may reorder sums
    with torch.no_grad():
        assert same(cached[1][rows], resid(base, 2, data.retain[1][0][rows]))
        assert same(corpus[:8], resid(base, 2, data.corpus[:8]))


def test_known_push_weights_follow_the_models_probability_of_the_answer(setup):
    base, data, _ = setup
    inputs = data.forget[0][:16]
    with torch.no_grad():
        logits = base(input_ids=inputs).logits[:, -2]  # the position that predicts the answer token

    def at_answer(ids):  # targets as interp/answers.py lays them out
        t = torch.full_like(inputs, -100)
        t[:, -2] = ids
        return t

    likely, unlikely = at_answer(logits.argmax(-1)), at_answer(logits.argmin(-1))
    p = logits.softmax(-1).max(-1).values
    assert torch.allclose(known_weights(base, inputs, likely), p + KNOWN_FLOOR, atol=1e-5)
    assert torch.allclose(known_weights(base, inputs, unlikely), torch.full((16,), KNOWN_FLOOR), atol=1e-3)
    pushed = fit("rmu", base, data, param_names(base, [0, 1, 2], "dense_4h_to_h"), 2, u=control_vector(128, 0, None),
                 push_weight="known")
    assert not torch.equal(pushed.gpt_neox.layers[2].mlp.dense_4h_to_h.weight,
                           base.gpt_neox.layers[2].mlp.dense_4h_to_h.weight)


def test_push_skips_positions_a_retain_prompt_shares(setup):
    _, data, _ = setup
    from interp.loading import load_model

    tok = load_model("pythia-mini", bridge=False).tokenizer
    inputs, mask = data.forget[0], data.forget_mask
    op = [tok.convert_tokens_to_ids(t) for t in ("*", "/")]
    first_op = (torch.isin(inputs, torch.tensor(op))).float().argmax(1)
    # "<bos> Calculate ... answer ." is every add_sub prompt's prefix too, so it is never pushed; from the
    # operator on, the prefix is mul_div's alone, so it always is
    assert not mask[:, :16].any()
    assert all(mask[i, first_op[i]:].all() for i in range(len(inputs)))
    # a prefix no retain prompt has stays unshared at every later token (the first operand alone may already be)
    assert not (mask[:, :-1] & ~mask[:, 1:]).any()


def test_word_forms_are_extra_forget_text_and_the_attacks_wording_stays_held_out(setup):
    from interp.loading import load_model
    from saes.unlearning import training_data
    from saes.unlearning.evaluate import prompt_sets

    tok = load_model("pythia-mini", bridge=False).tokenizer
    data = training_data(tok, UnlearnConfig(forget_text="prompts+words"))
    assert torch.equal(data.forget[0], setup[1].forget[0]) and not setup[1].words  # the prompts are unchanged
    wording = lambda text: " ".join(w for w in text.split() if not w.isdigit())
    seen = set()
    for ids, targets, mask in data.words:
        # pushed from the operation word on: "<bos> 12 | times 3 is", "<bos> the | quotient of 36 and 3 is"
        assert not mask[:, :2].any() and mask[:, 2:].all()
        for row, label in zip(ids[:50].tolist(), targets[:50, -2].tolist()):
            text = tok.decode(row[1:-1])  # without <bos> and the answer
            a, b = [int(w) for w in text.split() if w.isdigit()]
            assert row[-1] == label and tok.decode([label]).strip() == str(a * b if "times" in text else a // b)
            seen.add(wording(text))
    assert seen == {"times is", "the quotient of and is"}
    # the reworded attack asks in the corpus's other two forms, never unlearned on
    attack = {wording(e.clean) for e in prompt_sets("mul_div", 50, 0)["reworded"]}
    assert attack == {"the product of and is", "divided by is"}


def test_control_vector_lies_in_the_irrelevant_subspace(setup):
    q = basis(setup[2][2][1], list(range(50, 60)))
    u = control_vector(128, 3, q)
    assert u.norm().item() == pytest.approx(1.0) and (u - q @ (q.T @ u)).norm() < 1e-5
    score = lambda v: -(torch.linspace(0.1, 3, 128) @ v.abs()).item()  # any score: the lowest wins
    assert torch.equal(control_vector(128, 3, q, 1, score), u)  # one draw: the u above, bit for bit
    assert not torch.equal(control_vector(128, 4, q), u)  # another seed, another u
    best = control_vector(128, 3, q, 6, score)
    firsts = [control_vector(128, 3, q, n, score) for n in range(1, 7)]
    assert score(best) == min(score(v) for v in firsts) and score(best) <= score(u)
    assert (best - q @ (q.T @ best)).norm() < 1e-5  # still in the subspace


def test_half_push_recall_reads_the_answer_after_the_push(setup):
    base, data, _ = setup
    (inputs, targets), n = data.forget, 64
    inputs, targets, mask = inputs[:n], targets[:n], data.forget_mask[:n]
    with torch.no_grad():
        p = base(input_ids=inputs).logits[:, -2].softmax(-1).gather(1, targets[:, -2, None]).mean().item()
    u = control_vector(128, 0, None)
    assert half_push_recall(base, 2, inputs, targets, torch.zeros_like(mask), 50 * u) == pytest.approx(p)
    pushed = half_push_recall(base, 2, inputs, targets, mask, 50 * u)
    assert pushed < p  # moving the pushed positions toward a far-off point costs the answer


def test_clamping_edits_only_where_forget_features_fire(setup):
    _, _, saes = setup
    sae = saes[2][1]
    h = torch.randn(2, 5, 128) * 3
    f = sae.encode(h)
    feature = int(f[0, 0].argmax())
    edit = clamp_fn(sae, [feature], 1.0, torch.ones(sae.cfg.d_sae))
    out = edit(h)
    fires = f[..., feature] > 0
    assert fires.any()
    assert torch.allclose(out[~fires], h[~fires], atol=1e-4)  # decode + error term gives h back
    assert (sae.encode(out)[..., feature][fires] <= f[..., feature][fires]).all()


def test_tiny_end_to_end_run_resumes_after_a_stop(sae_run, tmp_path, monkeypatch):
    from dataclasses import replace

    from interp.errors import InterpError
    from interp.loading import load_model
    from saes.unlearning import evaluate as unlearn_eval
    from saes.unlearning import unlearn

    out = tmp_path / "run"
    cfg = UnlearnConfig(model="pythia-mini", sae=str(sae_run), steps=3, n_eval=40, probe_examples=60,
                        relearn_steps=1, relearn_lrs="1e-4", features=4, control_draws=2, out=str(out))
    evaluate, calls = unlearn_eval.evaluate, []

    def stop_at_third(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return evaluate(*a, **k)
    monkeypatch.setattr(unlearn_eval, "evaluate", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        unlearn(cfg, show_progress=False)
    work = tmp_path / "run.partial"
    assert not out.exists() and len(list((work / "trained").glob("*.safetensors"))) == 3
    saved = json.loads((work / "rows" / "original.json").read_text())
    with pytest.raises(InterpError, match="stopped run with other options"):
        unlearn(replace(cfg, steps=4), show_progress=False)

    def no_training(*a, **k):
        raise AssertionError("a trained method was trained again")
    monkeypatch.setattr(loop, "train", no_training)
    calls.clear()
    monkeypatch.setattr(unlearn_eval, "evaluate", lambda *a, **k: (calls.append(1), evaluate(*a, **k))[1])
    report = unlearn(cfg, show_progress=False)
    assert len(calls) == 3 and report["rows"]["original"] == saved  # only the rows not yet evaluated
    assert list(report["rows"]) == ["original", *UNLEARN_METHODS]  # every registered method, in registry order
    assert set(report["rows"]) == {"original", "sspu", "rmu", "gradient_ascent", "sae_clamping"}
    assert report["config"]["sspu"]["target"] == "control"  # a method's own options are saved under its name
    # layer 1 is no candidate: the update spans l-2..l
    assert report["layer"] == 2 and set(report["changed_params"]) <= set(report["params"])
    for name, row in report["rows"].items():
        assert 0 <= row["forget"] <= 1 and set(row["retain"]) == {"add_sub", "sequence", "lcm", "function"}
        assert {"few_shot", "reworded", "format", "relearn", "probe"} <= set(row)
        assert ("ablation" in row) == (name != "original")
    assert not out.with_name("run.partial").exists()
    assert unlearn(cfg, show_progress=False) == report  # a finished run is read back
    with pytest.raises(InterpError, match="finished run with other options"):
        unlearn(replace(cfg, retain_weight=5.0), show_progress=False)
    sel = json.loads((out / "selection.json").read_text())
    assert len(sel["forget_features"]) == 4 and sel["forget_features"][0]["score"] >= sel["forget_features"][-1]["score"]
    assert "| sspu |" in (out / "report.md").read_text()
    assert load_model(str(out / "model"), bridge=False).model.config.num_hidden_layers == 4


@pytest.mark.parametrize("args, message", [
    (["--forget", "mul_div", "--retain", "mul_div,add_sub"], "overlap in mul_div"),
    (["--retain", ""], "must each name at least one task"),
    (["--forget", "nope"], "unknown task"),
    (["--features", "5000"], "too many"),
    (["--irrelevant", "loud"], "--irrelevant must be score or quiet"),
    (["--target", "zero"], "--target must be control, erase or control+erase"),
    (["--n-eval", "0"], "--n-eval must be at least 1"),
    (["--forget-text", "words"], "--forget-text must be prompts or prompts+words"),
    (["--push-weight", "answer"], "--push-weight must be uniform or known"),
    (["--forget", "add_sub", "--retain", "lcm", "--forget-text", "prompts+words"], "needs --forget mul_div"),
    (["--relearn-draws", "0"], "--relearn-draws must be at least 1"),
    (["--control-draws", "0"], "--control-draws must be at least 1"),
    (["--relearn-lrs", "fast"], "--relearn-lrs takes comma-separated numbers"),
    (["--relearn-lrs", "1e-4,0"], "every rate > 0"),
    (["frontier", "--retain-weights", "ten"], "--retain-weights takes comma-separated numbers"),
    (["frontier", "--retain-weights", "5", "--rmu-weights", "-1"], "every weight must be >= 0"),
])
def test_bad_inputs(cli, sae_run, tmp_path, args, message):
    out = tmp_path / "bad"
    r = cli("unlearn", "--model", "pythia-mini", "--sae", str(sae_run), "--out", str(out), *args)
    assert r.returncode != 0 and message in r.stderr.strip().splitlines()[-1], r.stderr[-500:]
    assert not out.exists() and not out.with_name("bad.partial").exists()


def test_eval_sets_take_a_whole_split_when_it_is_smaller():
    from saes.unlearning.evaluate import chance, prompt_sets, test_set

    small = test_set("function", 1000)  # the split holds a few hundred
    assert 100 < len(small) < 1000 and len({e.clean for e in small}) == len(small)
    assert test_set("function", 50) == small[:50]  # a larger n_eval extends the same prompts
    sets = prompt_sets("mul_div", 1000, 0)
    assert len({len(v) for v in sets.values()}) == 1 and 0 < chance("mul_div", 1000) < 1


def test_relearning_averages_independent_draws_and_keeps_the_first(setup, monkeypatch):
    from dataclasses import replace

    from interp.corpus import packed_corpus_batch
    from interp.loading import load_model
    from saes.unlearning import evaluate as unlearn_eval

    base = setup[0]
    tok = load_model("pythia-mini", bridge=False).tokenizer
    corpus = packed_corpus_batch(tok, 2, 32, "unlearn-eval")
    cfg = UnlearnConfig(n_eval=40, probe_examples=40, relearn_steps=3, relearn_lrs="5e-4", seed=1)
    relearn, draws = unlearn_eval.relearn, []
    monkeypatch.setattr(unlearn_eval, "relearn", lambda *a: (draws.append(a[-2:]), relearn(*a))[1])
    one = unlearn_eval.evaluate(base, tok, "mul_div", ["add_sub"], corpus, 2, cfg)
    three = unlearn_eval.evaluate(base, tok, "mul_div", ["add_sub"], corpus, 2, replace(cfg, relearn_draws=3))
    assert draws == [(1, 0), (1, 0), (1, 1), (1, 2)]  # every draw its own examples; the first is the one-draw run's
    assert one["relearn_each"] == [one["relearn"]] and three["relearn_each"][0] == one["relearn"]
    assert three["relearn"] == pytest.approx(sum(three["relearn_each"]) / 3)


def test_relearning_reports_the_best_rate_of_draws_shared_across_rates(setup, monkeypatch):
    from interp.corpus import packed_corpus_batch
    from interp.loading import load_model
    from saes.unlearning import evaluate as unlearn_eval

    base = setup[0]
    tok = load_model("pythia-mini", bridge=False).tokenizer
    corpus = packed_corpus_batch(tok, 2, 32, "unlearn-eval")
    cfg = UnlearnConfig(n_eval=40, probe_examples=40, relearn_steps=3, relearn_lrs="1e-5,3e-3", relearn_draws=2,
                        seed=1)
    relearn, calls = unlearn_eval.relearn, []
    monkeypatch.setattr(unlearn_eval, "relearn", lambda *a: (calls.append((a[-3], a[-1])), relearn(*a))[1])
    row = unlearn_eval.evaluate(base, tok, "mul_div", ["add_sub"], corpus, 2, cfg)
    assert calls == [(1e-5, 0), (1e-5, 1), (3e-3, 0), (3e-3, 1)]  # each rate sees the same two draws
    by_lr = row["relearn_by_lr"]
    assert set(by_lr) == {"1e-05", "0.003"} and row["relearn"] == max(by_lr.values())
    assert by_lr[f"{row['relearn_lr']:g}"] == row["relearn"] == pytest.approx(sum(row["relearn_each"]) / 2)
    assert by_lr["1e-05"] != by_lr["0.003"]  # the rate matters, so taking the best is not a no-op


def test_sae_of_another_model_is_refused(cli, sae_run, tmp_path):
    r = cli("unlearn", "--model", "mdlm-mini", "--sae", str(sae_run), "--out", str(tmp_path / "x"))
    assert r.returncode != 0 and "was trained on pythia-mini, not on mdlm-mini" in r.stderr.strip().splitlines()[-1]


def test_matched_retain_interpolates_rmu_at_sspu_retain():
    from saes.unlearning.frontier import matched

    point = lambda w, retain, forget, ce: {"retain_weight": w, "retain_mean": retain, "forget": forget,
                                           "probe": forget, "corpus_ce": ce}
    rmu = [point(20, 0.90, 0.10, 1.4), point(10, 0.80, 0.30, 1.6)]  # unsorted on purpose
    sspu = [point(10, 0.85, 0.15, 1.4), point(20, 0.95, 0.01, 1.4)]
    inside, outside = matched(sspu, rmu)
    assert inside["sspu_minus_rmu"] == {"forget": pytest.approx(0.15 - 0.20), "probe": pytest.approx(-0.05),
                                        "corpus_ce": pytest.approx(-0.1)}
    assert outside["sspu_minus_rmu"] is None  # 0.95 is above RMU's range: no extrapolation


def test_seed_spread_takes_each_seed_against_its_own_curve():
    from saes.unlearning.frontier import matched, points, with_seed_spread

    row = lambda retain, forget: {"retain_mean": retain, "corpus_ce": 1.4, "forget": forget}
    rows = {("rmu", 10, 0): row(0.80, 0.30), ("rmu", 20, 0): row(0.90, 0.10), ("sspu", 20, 0): row(0.85, 0.10),
            ("rmu", 10, 1): row(0.80, 0.50), ("rmu", 20, 1): row(0.90, 0.30), ("sspu", 20, 1): row(0.85, 0.50),
            ("sspu", 10, 1): row(0.70, 0.0)}  # below seed 1's RMU curve: no match there
    pts = points(rows)
    [low, c] = with_seed_spread(matched(pts["sspu"], pts["rmu"]), rows)
    assert c["sspu_minus_rmu"]["forget"] == pytest.approx(0.30 - 0.30)  # mean curves
    assert c["seeds_matched"] == 2 and c["std_over_seeds"]["forget"] == pytest.approx(0.1)  # -0.1 and +0.1
    assert low["seeds_matched"] == 0 and low["sspu_minus_rmu"] is None
    assert c["seed_mean"]["forget"] == pytest.approx(0.0) and c["seed_se"]["forget"] == pytest.approx(0.1)


def test_resolved_needs_two_standard_errors():
    from saes.unlearning.frontier import resolved

    c = {"seed_mean": {"forget": -0.05, "probe": 0.05, "ablation": 0.05},
         "seed_se": {"forget": 0.02, "probe": 0.02, "ablation": 0.03}}
    assert resolved(c) == (["forget"], ["probe"])  # ablation: 0.05 < 2 x 0.03
    assert resolved({}) == ([], [])


def test_frontier_table_gives_a_verdict_for_every_matched_weight():
    from saes.unlearning.frontier import METRICS, table

    lower = {k: -0.05 for k in METRICS}
    matched_at = lambda w: {"retain_weight": w, "retain_mean": 0.88, "seeds_matched": 3, "std_over_seeds": {},
                            "sspu_minus_rmu": lower | {"format": 0.01, "corpus_ce": 0.0},
                            "seed_mean": lower, "seed_se": {k: 0.01 for k in METRICS}}
    md = table({"sspu": [], "rmu": []}, [matched_at(80), matched_at(90),
                                         {"retain_weight": 200, "retain_mean": 0.9, "seeds_matched": 0,
                                          "sspu_minus_rmu": None}])
    assert "At retain weight 80, SSPU is lower than RMU at matched retain under all but: format." in md
    assert "At retain weight 90," in md and "At retain weight 200" not in md  # outside RMU's range: no verdict


def test_tiny_frontier_resumes_and_keeps_one_configuration(sae_run, tmp_path, monkeypatch):
    from dataclasses import replace

    from interp.errors import InterpError
    from saes.unlearning.frontier import frontier

    cfg = UnlearnConfig(model="pythia-mini", sae=str(sae_run), steps=2, n_eval=20, probe_examples=40,
                        relearn_steps=1, relearn_lrs="1e-4", features=4, control_draws=1)
    out = tmp_path / "frontier"
    first = frontier(cfg, [1.0], 1, out, show_progress=False)
    assert [p["retain_weight"] for p in first["points"]["sspu"]] == [1.0]
    assert first["matched"][0]["sspu_minus_rmu"] is None  # one RMU point is no curve

    trained, train = [], loop.train
    # records which points are trained, and trains them for real
    monkeypatch.setattr(loop, "train", lambda method, *a, **k: (trained.append(method.name), train(method, *a, **k))[1])
    result = frontier(cfg, [1.0, 50.0], 1, out, show_progress=False)
    assert trained == ["sspu", "rmu"]  # only the new weight's points
    assert len(list((out / "rows").glob("*.json"))) == 4
    assert all(k in result["points"]["rmu"][1] for k in ("forget", "few_shot", "relearn", "probe", "ablation"))
    assert "| sspu | 50 | 1 |" in (out / "frontier.md").read_text()
    trained.clear()
    result = frontier(cfg, [1.0, 50.0], 1, out, show_progress=False, rmu_weights=(50.0, 200.0))
    assert trained == ["rmu"]  # RMU alone at the one new weight
    assert [len(result["points"][m]) for m in ("sspu", "rmu")] == [2, 3]
    with pytest.raises(InterpError, match="frontier with other options"):
        frontier(replace(cfg, steps=3), [1.0], 1, out, show_progress=False)


def test_a_run_saved_before_an_option_existed_matches_that_options_default():
    from dataclasses import asdict

    from saes.unlearning import same_options
    from saes.unlearning.config import flat

    saved = asdict(UnlearnConfig(seed=2))
    del saved["sspu"]["target"]
    assert same_options(saved, UnlearnConfig(seed=2))
    assert not same_options(saved, with_options(UnlearnConfig(seed=2), target="erase"))
    assert not same_options(saved, UnlearnConfig(seed=3))
    # forget_text came when the default was the prompts alone, so a run saved before it used them
    del saved["forget_text"]
    assert same_options(saved, UnlearnConfig(seed=2, forget_text="prompts"))
    assert not same_options(saved, UnlearnConfig(seed=2))
    # a config saved before the options were grouped drew from other random streams: never the same run
    assert not same_options(flat(asdict(UnlearnConfig(seed=2))), UnlearnConfig(seed=2))


def test_nested_options_keep_their_plain_names():
    from dataclasses import fields

    from saes.unlearning.config import option_groups

    cfg = with_options(UnlearnConfig(), target="erase", clamp=2.0, steps=5)
    assert (cfg.sspu.target, cfg.sae_clamping.clamp, cfg.steps) == ("erase", 2.0, 5)
    assert UnlearnConfig().sspu.target == "control"  # the default's group is not shared with cfg's
    names = [n for group in option_groups().values() for n in group] + [f.name for f in fields(UnlearnConfig)]
    assert len(names) == len(set(names))  # one command line: every plain name once
    with pytest.raises(TypeError):
        with_options(UnlearnConfig(), no_such_option=1)


def test_the_registry_refuses_unknown_names_and_dispatches_a_new_method(setup, monkeypatch):
    from types import SimpleNamespace

    from interp.errors import InterpError
    from saes.unlearning import Setup, register
    from saes.unlearning.method import Method

    with pytest.raises(InterpError, match="unknown unlearning method 'nope'; valid: sspu, rmu, gradient_ascent, "
                                          "sae_clamping"):
        get_method("nope")
    with pytest.raises(ValueError, match="already registered"):
        register(get_method("sspu"))
    with pytest.raises(TypeError, match="UnlearnMethod protocol"):
        register(object())

    class Toy(Method):  # one new module's worth: a name and a loss
        name, steps = "toy", []

        def loss(self, ctx, model, batch):
            self.steps.append(batch.step)
            return resid(model, ctx.layer, batch.retain[0]).pow(2).mean()
    monkeypatch.setitem(UNLEARN_METHODS, "toy", Toy())
    base, data, _ = setup
    names = param_names(base, [2], "dense_4h_to_h")
    s = Setup("pythia-mini", base, None, data, SimpleNamespace(layer=2, forget=[]), None, None, None, None, names,
              1.0, {})
    model = s.train("toy", UnlearnConfig(steps=2, batch_size=4, lr=1e-2))
    assert Toy.steps == [0, 1]  # the shared loop ran the method's loss once a step
    before = dict(base.named_parameters())
    assert all(torch.equal(p, before[n]) == (n not in names) for n, p in model.named_parameters())
