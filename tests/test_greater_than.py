"""Greater-than on the two ways tokenizers write years: one token for the two digits (GPT-2's "17" "32") and one
token per digit (SmolLM2's), on a tiny Llama whose unembedding favours digits so its greedy year varies."""

import pytest
import torch

from interp import greater_than as gt
from interp.answers import correct
from interp.tasks import make_examples, read_csv, write_csv
from tests.conftest import one_line_error

WORDS = ["<pad>", "<mask>", "<eos>", "<unk>", "The", "lasted", "from", "to", "the", "year", *gt.NOUNS]


def word_level(split: str):
    """A tokenizer over the task's words whose numbers split into `split`-digit tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    width = split.count("d")
    numbers = [f"{i:0{width}d}" for i in range(10 ** width)]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(WORDS + numbers + [str(i) for i in range(11, 18)]))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Split(Regex(split), "isolated")])
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", mask_token="<mask>", eos_token="<eos>",
                                   unk_token="<unk>")


@pytest.fixture(scope="module", params=[r"\d\d", r"\d"], ids=["year-token", "digit-tokens"])
def setup(request, tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = word_level(request.param)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=64, pad_token_id=0)).eval()
    digits = [i for t, i in tok.get_vocab().items() if t.isdigit() and len(t) == request.param.count("d")]
    with torch.no_grad():  # words never win the argmax: every greedy answer is a year, right or wrong
        keep = torch.zeros(len(tok), 1)
        keep[digits] = 8.0
        model.lm_head.weight.mul_(keep)
    path = tmp_path_factory.mktemp("gt") / "model"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return tok, model, path


def test_years_are_one_or_two_tokens_and_pairs_align(setup):
    tok, _, _ = setup
    ex = make_examples("greater_than", "circuit", 40, tokenizer=tok, aligned=True)
    k = {len(tok(e.label.text, add_special_tokens=False)["input_ids"]) for e in ex}
    assert k == ({1} if len(tok("32", add_special_tokens=False)["input_ids"]) == 1 else {2})
    assert all(isinstance(e.label, gt.Later) and 2 <= e.label.than <= 98 for e in ex)
    for e in ex:  # the pair differs only in the start year, which the corrupted prompt puts at 01
        cc = e.clean[-2:]
        assert e.corrupted == e.clean.replace(f"year {cc}{e.label.than:02d} ", f"year {cc}01 ")
        assert len(tok(e.clean)["input_ids"]) == len(tok(e.corrupted)["input_ids"])


def greedy_year(model, tok, prompt: str) -> int | None:
    ids = torch.tensor([tok(prompt)["input_ids"]])
    k = len(tok("00", add_special_tokens=False)["input_ids"])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=k, do_sample=False,
                         pad_token_id=0)[0, ids.shape[1]:]
    text = tok.decode(out)
    return int(text) if len(text) == 2 and text.isdigit() else None


def test_accuracy_is_greedy_generation_judged_on_the_year(setup):
    tok, model, _ = setup
    ex = make_examples("greater_than", "test", 40, tokenizer=tok)
    ours = correct(model, tok, [e.clean for e in ex], [e.label for e in ex]).tolist()
    years = [greedy_year(model, tok, e.clean) for e in ex]
    assert None not in years
    assert ours == [y > e.label.than for y, e in zip(years, ex)]
    assert 0 < sum(ours) < len(ours)  # both verdicts occur, so the comparison can fail


def test_probability_difference_is_right_years_minus_wrong_years(setup):
    from circuits.data import task_batches

    tok, model, _ = setup
    ex = make_examples("greater_than", "circuit", 16, tokenizer=tok, aligned=True)
    (batch,) = task_batches(tok, "greater_than", examples=ex, batch_size=16)
    with torch.no_grad():
        ours = batch.score("prob_diff", batch.answer(model(input_ids=batch.clean).logits), alt=None)
    one = lambda text: tok(text, add_special_tokens=False)["input_ids"][0]
    for value, e in zip(ours, ex):
        ids = tok(e.clean)["input_ids"]
        with torch.no_grad():
            p1 = model(input_ids=torch.tensor([ids])).logits[0, -1].softmax(-1)
        if len(tok("00", add_special_tokens=False)["input_ids"]) == 1:
            p = torch.stack([p1[one(f"{yy:02d}")] for yy in range(100)])
            later = torch.arange(100) > e.label.than
            want = p[later].sum() - p[~later].sum()
        else:  # a tens digit above the start's makes the year later whatever its units: its whole mass counts
            t0, u0 = divmod(e.label.than, 10)
            with torch.no_grad():
                p2 = model(input_ids=torch.tensor([ids + [one(str(t0))]])).logits[0, -1].softmax(-1)
            tens, units = p1[[one(str(d)) for d in range(10)]], p2[[one(str(d)) for d in range(10)]]
            d = torch.arange(10)
            want = tens[d > t0].sum() - tens[d < t0].sum() + tens[t0] * (units[d > u0].sum() - units[d <= u0].sum())
        assert value.item() == pytest.approx(want.item(), abs=1e-5)


def test_circuit_discovery_reads_the_probability_difference(setup, tmp_path):
    from circuits.discovery import DiscoverConfig, discover

    _, _, path = setup
    r = discover(DiscoverConfig(model=str(path), task="greater_than", method="eap", metric="prob_diff", n=8,
                                n_eval=8, batch_size=8, top_percent=50, curve=()))
    ev = r.evaluation
    assert r.circuit.scores.abs().max() > 0
    assert ev["logit_diff_recovered"] is None  # a range has no logit difference
    assert ev["prob_diff_clean"] != ev["prob_diff_corrupted"] and ev["prob_diff_recovered"] == ev["prob_diff_recovered"]


def test_refusals_and_the_csv_form(setup, cli, tmp_path, tok):
    _, _, path = setup
    one_line_error(cli("circuits", "discover", "--model", path, "--task", "greater_than", "--metric", "logit_diff",
                       "--out", tmp_path / "c"), "use --metric prob_diff or kl")
    one_line_error(cli("finetune", "--model", path, "--task", "greater_than", "--out", tmp_path / "f"),
                   "task 'greater_than' has a range of right answers")
    one_line_error(cli("eval", "--model", "pythia-mini", "--task", "greater_than"),
                   "task 'greater_than' cannot be built on this tokenizer")
    assert not (tmp_path / "c").exists() and not (tmp_path / "f").exists()
    ex = make_examples("greater_than", "test", 5, tokenizer=setup[0])
    back = read_csv(write_csv(ex, tmp_path / "gt.csv"), setup[0])
    assert back == ex and str(ex[0].label).startswith(">")
