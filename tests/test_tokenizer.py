from transformers import AutoTokenizer

from interp import vocab
from interp.corpus import corpus_lines
from interp.tasks import ARITHMETIC as TASKS, make_examples
from interp.tokenizer import TOKENIZER_DIR, build_tokenizer, number_token_id


def test_shipped_files_equal_a_fresh_build(tok):
    fresh = build_tokenizer()
    assert fresh.get_vocab() == tok.get_vocab()
    assert len(tok) == len(vocab.all_tokens())


def test_autotokenizer_loads_offline_and_specials(tok):
    t = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))
    for name in ["bos", "eos", "pad", "mask", "unk"]:
        assert getattr(t, f"{name}_token_id") is not None
    assert t("1 + 2 =")["input_ids"][0] == t.bos_token_id


def test_every_number_is_one_token(tok):
    for n in range(vocab.MAX_NUMBER + 1):
        ids = tok(str(n), add_special_tokens=False)["input_ids"]
        assert ids == [number_token_id(n)]
    assert tok("1000", add_special_tokens=False)["input_ids"] == [tok.unk_token_id]


def test_round_trip(tok):
    # task prompts are written in the canonical spacing, so text survives encode -> decode exactly
    for text in [e.clean for t in TASKS for e in make_examples(t, "test", 20)]:
        ids = tok(text)["input_ids"]
        assert tok.unk_token_id not in ids, text
        assert tok.decode(ids, skip_special_tokens=True) == text
    # any text survives at the level of token ids (decode may respace, e.g. "3: 4" -> "3 : 4")
    gen = corpus_lines(0)
    for text in [next(gen) for _ in range(500)]:
        ids = tok(text)["input_ids"]
        assert tok.unk_token_id not in ids, text
        assert tok(tok.decode(ids, skip_special_tokens=True))["input_ids"] == ids
