"""Token text: how a prompt becomes ids (one encoder for every view) and how a token is shown."""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from typing import Any

CHARS_PER_TOKEN_BOUND = 64  # no tokenizer here yields fewer than one token per 64 characters


def visible_token(text: str) -> str:
    """Token text with whitespace and control characters made visible ('␣', '↵', '⇥', '\\x00').

    >>> visible_token(" Paris"), visible_token("a\\nb"), visible_token("")
    ('␣Paris', 'a↵b', '∅')
    """
    out = []
    for ch in text:
        if ch == " ":
            out.append("␣")
        elif ch == "\n":
            out.append("↵")
        elif ch == "\t":
            out.append("⇥")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") or ch in "\u2028\u2029":
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out) or "∅"


def token_text(tokenizer: Any, token_id: int) -> str:
    """What one token adds to the text; a token holding part of a UTF-8 character, which decodes to
    the replacement character, is shown as its bytes instead (e.g. ``\\xe2\\x80``)."""
    text = tokenizer.decode([token_id])
    if "\ufffd" not in text:
        return text
    raw = tokenizer.convert_ids_to_tokens(token_id)
    byte_of = _byte_level_decoder()
    if isinstance(raw, str) and raw and all(ch in byte_of for ch in raw):  # GPT-2 style byte-level BPE
        return bytes(byte_of[ch] for ch in raw).decode("utf-8", errors="backslashreplace")
    return raw if isinstance(raw, str) and raw else text  # SentencePiece byte tokens read "<0xE2>"


def token_label(tokenizer: Any, token_id: int) -> str:
    """A token as the views label it: its text with whitespace made visible."""
    return visible_token(token_text(tokenizer, int(token_id)))


@functools.lru_cache(maxsize=1)
def _byte_level_decoder() -> dict[str, int]:
    """GPT-2's byte -> printable character table, inverted (the standard bytes_to_unicode)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[chr(byte)] = byte
        else:
            chars[chr(256 + extra)] = byte
            extra += 1
    return chars


def check_prompt_text(text: Any, max_tokens: int, field: str = "prompt") -> str:
    """The checks a prompt passes before the tokenizer sees it (type, emptiness, size, encodability)."""
    if not isinstance(text, str):
        raise ValueError(f"The {field} must be text, got {type(text).__name__}.")
    if not text.strip():
        raise ValueError(f"The {field} is empty: type some text first.")
    if len(text) > max_tokens * CHARS_PER_TOKEN_BOUND:
        raise ValueError(f"The {field} has {len(text):,} characters, far more than the {max_tokens:,}-token "
                         "limit: shorten it.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        bad = text[error.start]
        raise ValueError(f"The {field} contains {bad!r} at character {error.start}, half of a UTF-16 surrogate "
                         "pair that is not a character: remove it or paste the text again.") from None
    return text


def encode_prompt(tokenizer: Any, prompt: str | Sequence[int], max_tokens: int, d_vocab: int | None = None,
                  n_ctx: int | None = None, field: str = "prompt") -> list[int]:
    """Token ids of a prompt given as text (with the tokenizer's usual special tokens, e.g. BOS) or as ids,
    or a ValueError a learner can act on."""
    if isinstance(prompt, str):
        check_prompt_text(prompt, max_tokens, field)
        ids = [int(i) for i in tokenizer(prompt)["input_ids"]]
    elif isinstance(prompt, Sequence) and not isinstance(prompt, bytes):
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in prompt):
            raise ValueError(f"The {field}'s token ids must be whole numbers.")
        ids = [int(i) for i in prompt]
    else:
        raise ValueError(f"The {field} must be text, got {type(prompt).__name__}.")
    if not ids:
        raise ValueError(f"The {field} produced no tokens: type some text first.")
    if d_vocab is not None and not all(0 <= i < d_vocab for i in ids):
        raise ValueError(f"The {field}'s token ids must be integers from 0 to {d_vocab - 1}.")
    if len(ids) > max_tokens:
        context = f" (the model's context is {n_ctx:,})" if n_ctx else ""
        raise ValueError(f"The {field} has {len(ids):,} tokens; the limit here is {max_tokens:,}{context}. "
                         "Shorten it.")
    return ids
