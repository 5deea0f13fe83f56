"""Answers on a real-style tokenizer: a byte-level BPE that splits digits one per token (as Llama's and SmolLM2's
do), trained here on the task prompts, so numbers are multi-token answers and IOI names single tokens."""

import pytest
import torch

from interp.answers import answer_ids, correct, encode, teacher_forced_correct
from interp.errors import InterpError
from interp.tasks import IOI_WORDS, make_examples


@pytest.fixture(scope="module")
def bpe():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    text = [e.clean for t in ("add_sub", "mul_div", "lcm") for e in make_examples(t, "train", 300)]
    text += [e.clean + f" {e.label}." for e in make_examples("ioi", "train", 300)]
    text += [" ".join(IOI_WORDS["names"])] * 20
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=600, special_tokens=["<pad>", "<mask>", "<eos>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", mask_token="<mask>", eos_token="<eos>")


@pytest.fixture(scope="module")
def llama(bpe):
    """A tiny Llama (grouped-query attention) fine-tuned briefly on add_sub through multi-token answers: it
    learns to answer with a space and digits, sometimes the right ones."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from interp.finetune import FinetuneConfig, finetune
    from interp.loading import LoadedModel

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(bpe), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    model = LlamaForCausalLM(cfg)
    run = finetune(FinetuneConfig(task="add_sub", steps=40, lr=3e-3, batch_size=32, n_eval=20, eval_every=40),
                   loaded=LoadedModel("tiny-llama", "ar", model, bpe))
    assert run.history[-1]["loss"] < 2.0  # multi-token answer loss trains
    return run.model.eval()


def test_numbers_are_several_tokens_and_names_one(bpe, tok):
    from interp.answers import subword

    assert len(answer_ids(bpe, 70)) == 3  # " ", "7", "0"
    assert subword(bpe) and not subword(tok)
    assert len(answer_ids(bpe, "Mary")) == 1
    ex = make_examples("ioi", "test", 20, tokenizer=bpe, aligned=True)
    assert all(len(bpe(e.clean)["input_ids"]) == len(bpe(e.corrupted)["input_ids"]) for e in ex)


def test_encode_puts_targets_where_they_are_predicted(bpe):
    inputs, targets = encode(bpe, ["1 + 2 =", "10 + 20 ="], [3, 30], diffusion=False)
    for row, answer in zip(range(2), ([3], [30])):
        ids = answer_ids(bpe, answer[0])
        pos = (targets[row] != -100).nonzero().flatten()
        assert targets[row, pos].tolist() == ids
        assert inputs[row, pos + 1].tolist() == ids  # AR: position t predicts token t + 1
    masked, mtargets = encode(bpe, ["1 + 2 ="], [30], diffusion=True)
    assert (masked[0, mtargets[0] != -100] == bpe.mask_token_id).all()


def reference(model, tok, prompt: str, label) -> bool:
    """Plain transformers greedy decoding, judged on text: the continuation is the answer and no more of its word."""
    ids = torch.tensor([tok(prompt)["input_ids"]])
    want = f" {label}"
    k = len(answer_ids(tok, label))
    out = model.generate(ids, max_new_tokens=k + 1, do_sample=False, pad_token_id=tok.pad_token_id)
    text = tok.decode(out[0, ids.shape[1]:])
    return text.startswith(want) and (len(text) == len(want) or not text[len(want)].isalnum())


def test_exact_match_equals_greedy_generation(bpe, llama):
    """The model's own greedy number is right, the same number cut short is wrong (the model goes on with its
    digits), the task's label is right or wrong: every verdict matches `generate`, prompt by prompt."""
    import re

    prompts, labels = [], []
    for e in make_examples("add_sub", "test", 30):
        ids = torch.tensor([bpe(e.clean)["input_ids"]])
        gen = llama.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=bpe.pad_token_id)[0, ids.shape[1]:]
        own = re.match(r" (\d+)[^\d]", bpe.decode(gen))  # a number the model ends
        for label in [e.label, *([own[1], own[1][:-1]] if own else [])]:
            if label != "":
                prompts.append(e.clean)
                labels.append(label)
    ours = correct(llama, bpe, prompts, labels)
    refs = torch.tensor([reference(llama, bpe, p, y) for p, y in zip(prompts, labels)])
    assert refs.any() and not refs.all()  # both verdicts occur, so the comparison means something
    assert ours.tolist() == refs.tolist()


def test_teacher_forced_correct_needs_every_answer_token():
    logits = torch.zeros(1, 3, 5)
    logits[0, 0, 2] = logits[0, 1, 4] = 1
    assert teacher_forced_correct(logits, torch.tensor([[2, 4, -100]])).item()
    assert not teacher_forced_correct(logits, torch.tensor([[2, 3, -100]])).item()


def test_ioi_is_refused_where_names_are_not_single_tokens(tok):
    with pytest.raises(InterpError, match="cannot be built on this tokenizer"):
        make_examples("ioi", "test", 10, tokenizer=tok)
