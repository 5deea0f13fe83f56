"""The workbench's word-level tokenizer, shipped as Hugging Face files inside the package.

Numbers 0..999 are single tokens; text is split on whitespace, digit runs, letter runs and single
punctuation marks. Decoding joins tokens with spaces and then applies HF's standard clean-up (no space
before `,` `.` `?` `!`), so the task prompts, which are written in that canonical spacing, round-trip.
Every encoding starts with `<bos>`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from . import vocab

TOKENIZER_DIR = Path(__file__).parent / "assets" / "tokenizer"
SPLIT_PATTERN = r"\d+|[A-Za-z]+|<[a-z]+>|[^\sA-Za-z\d]"


def build_tokenizer():
    """Build the fast tokenizer from `vocab` (deterministic: same files every time)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    ids = {tok: i for i, tok in enumerate(vocab.all_tokens())}
    tok = Tokenizer(models.WordLevel(vocab=ids, unk_token=vocab.UNK))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated")]
    )
    tok.post_processor = processors.TemplateProcessing(
        single=f"{vocab.BOS} $A", pair=f"{vocab.BOS} $A $B", special_tokens=[(vocab.BOS, ids[vocab.BOS])]
    )
    tok.add_special_tokens(vocab.SPECIALS)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=vocab.BOS,
        eos_token=vocab.EOS,
        pad_token=vocab.PAD,
        unk_token=vocab.UNK,
        mask_token=vocab.MASK,
        clean_up_tokenization_spaces=True,
        model_max_length=128,
        padding_side="left",
    )


def save_tokenizer(path: Path = TOKENIZER_DIR) -> Path:
    build_tokenizer().save_pretrained(str(path))
    return path


@lru_cache(maxsize=1)
def load_tokenizer():
    """The shipped tokenizer, loaded offline with `AutoTokenizer`."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))


def number_token_id(n: int) -> int:
    """Token id of the integer n (0..MAX_NUMBER); ids are laid out so this is arithmetic."""
    if not 0 <= n <= vocab.MAX_NUMBER:
        raise ValueError(f"{n} is not a single token: numbers 0..{vocab.MAX_NUMBER} are")
    return len(vocab.SPECIALS) + n
