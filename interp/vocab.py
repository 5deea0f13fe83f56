"""The closed vocabulary the tokenizer is built from.

Every integer 0..MAX_NUMBER is one token, so every task label is one token (edge attribution needs
single-token labels). Words are the union of the task instructions and the base-corpus templates;
a test checks that no generated text falls back to the unknown token.
"""

MAX_NUMBER = 999

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>", "<mask>"]
PAD, BOS, EOS, UNK, MASK = SPECIALS

PUNCTUATION = list("+-*/=(),.:;?!'") + ["x", "y"]

WORDS = sorted(set("""
Calculate the result of following arithmetic expression and provide only final answer
Continue sequence give next term Find least common multiple LCM Compute value function Given
plus minus times divided by is equals sum difference product quotient
then after comes count from in steps step start at multiply each double triple
if so when we get gives makes take away add to subtract multiplied that
number numbers a an of it what first second third this one two three
yes no true false I you can see here there
""".split()) - set(PUNCTUATION))


def all_tokens() -> list[str]:
    """Tokens in id order: specials, numbers, punctuation, words."""
    return SPECIALS + [str(n) for n in range(MAX_NUMBER + 1)] + PUNCTUATION + WORDS
