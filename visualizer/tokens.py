"""Token text: how a prompt becomes ids (one encoder for every view) and how a token is shown."""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CHARS_PER_TOKEN_BOUND = 64  # no tokenizer here yields fewer than one token per 64 characters


@functools.lru_cache(maxsize=1 << 16)  # pure, and the views label the same few thousand tokens all day
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


def decoded(tokenizer: Any, token_id: int) -> str:
    """`tokenizer.decode([token_id])`, remembered per tokenizer: a vocabulary is finite, and every prompt's views
    decode the same tokens again (at 512 tokens, decoding them one by one was a fifth of the trace's bookkeeping)."""
    token_id = int(token_id)
    cache = _decoded_cache(tokenizer)
    if cache is None:
        return tokenizer.decode([token_id])
    text = cache.get(token_id)
    if text is None:
        text = cache[token_id] = tokenizer.decode([token_id])
    return text


def decoded_label(tokenizer: Any, token_id: int) -> str:
    """A token decoded on its own, whitespace made visible."""
    return visible_token(decoded(tokenizer, token_id))


def _decoded_cache(tokenizer: Any) -> dict[int, str] | None:
    # kept on the tokenizer itself (its __dict__, past transformers' attribute hooks): it lives and dies with it
    try:
        attributes = vars(tokenizer)
    except TypeError:  # no __dict__ (__slots__, a raw tokenizers.Tokenizer): decoded each time
        return None
    cache = attributes.get("_itl_decoded")
    if cache is None:
        cache = attributes.setdefault("_itl_decoded", {})
    return cache


def token_text(tokenizer: Any, token_id: int) -> str:
    """What one token adds to the text; a token holding part of a UTF-8 character, which decodes to
    the replacement character, is shown as its bytes instead (e.g. ``\\xe2\\x80``)."""
    text = decoded(tokenizer, token_id)
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


# --- instruct models: the chat template around a prompt --------------------------------------------------------

PIPELINE_NOTE = ("The chapter's `pipeline(...)` call passed the raw prompt to the model, not this template: "
                 "an instruct model was trained on text wrapped like this.")
_SENTINEL = "\u2063ITL-USER-TEXT\u2063"  # stands in for the user's text when the template is rendered bare


@dataclass(frozen=True)
class ChatWrap:
    """A prompt wrapped in the tokenizer's chat template, and what the template added around it."""

    text: str  # the templated prompt, as the prompt box will hold it
    added_before: list[str]  # visible labels of the tokens the model sees before the user's text (BOS included)
    added_after: list[str]  # ... and after it (the end of the turn and the assistant's header)
    note: str  # Markdown: what was added, the doubled-BOS check, and the pipeline remark
    bos_stripped: bool  # the template's leading BOS text was left out because the tokenizer adds BOS itself


def has_chat_template(tokenizer: Any) -> bool:
    """True when the tokenizer carries a chat template (instruct models do; base models usually not)."""
    template = getattr(tokenizer, "chat_template", None)
    return bool(template) and hasattr(tokenizer, "apply_chat_template")


def _render(tokenizer: Any, content: str) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                         add_generation_prompt=True)


def _adds_bos(tokenizer: Any) -> bool:
    """Whether encoding a text puts a BOS token in front of it (Llama/Phi-3 tokenizers do, SmolLM2's not)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    ids = tokenizer("a")["input_ids"]
    return bos is not None and bool(ids) and ids[0] == bos


def chat_wrap(tokenizer: Any, text: str, max_tokens: int = 4096) -> ChatWrap:
    """`text` as one user turn of the chat template with the assistant's turn opened, as an instruct model expects.

    Encoding `apply_chat_template(..., tokenize=False)` again gives a second BOS where the template writes one and
    the tokenizer adds one (Phi-3-mini's 2024 template); the leading BOS text is then left out so the model sees
    exactly one, and the note says so.
    """
    if not has_chat_template(tokenizer):
        raise ValueError("This model's tokenizer has no chat template (tokenizer.chat_template is empty): "
                         "it is not an instruct model, so there is nothing to wrap the prompt in.")
    check_prompt_text(text, max_tokens)
    templated = _render(tokenizer, text)
    bos_text = getattr(tokenizer, "bos_token", None)
    bos_stripped = bool(bos_text) and templated.startswith(bos_text) and _adds_bos(tokenizer)
    if bos_stripped:
        templated = templated[len(bos_text):]
    before, after = _added_tokens(tokenizer, templated, _locate(tokenizer, templated, text, bos_stripped))
    return ChatWrap(templated, before, after, _wrap_note(tokenizer, before, after, bos_stripped), bos_stripped)


def _locate(tokenizer: Any, templated: str, text: str, bos_stripped: bool) -> tuple[int, int] | None:
    """Where the user's text sits in the templated text: after the bare template's prefix, else its last match."""
    bare = _render(tokenizer, _SENTINEL)
    prefix = bare.split(_SENTINEL, 1)[0]
    if bos_stripped:
        prefix = prefix[len(tokenizer.bos_token):]
    if templated.startswith(prefix + text):
        return len(prefix), len(prefix) + len(text)
    start = templated.rfind(text.strip())  # a template that trims the content
    return (start, start + len(text.strip())) if start >= 0 and text.strip() else None


def _added_tokens(tokenizer: Any, templated: str, span: tuple[int, int] | None) -> tuple[list[str], list[str]]:
    """Labels of the tokens before and after the user's text, encoded exactly as the app encodes a prompt."""
    encoded = tokenizer(templated, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    labels = [token_label(tokenizer, i) for i in ids]
    if span is None:
        return labels, []
    start, end = span
    inside = [k for k, (a, b) in enumerate(offsets) if b > a and a < end and b > start]  # tokens of the user's text
    if not inside:
        return labels, []
    return labels[:inside[0]], labels[inside[-1] + 1:]


def _wrap_note(tokenizer: Any, before: list[str], after: list[str], bos_stripped: bool) -> str:
    def chips(labels: list[str]) -> str:
        # a label holding a backtick needs a double-backtick code span
        return " ".join(f"`` {label} ``" if "`" in label else f"`{label}`" for label in labels) or "nothing"

    lines = [f"**The chat template added {len(before)} tokens before your text:** {chips(before)}",
             f"**and {len(after)} after it:** {chips(after)}"]
    if bos_stripped:
        bos = visible_token(tokenizer.bos_token)
        lines.append(f"The template's text begins with the BOS token `{bos}`, and this tokenizer adds `{bos}` "
                     "itself when it encodes a prompt: encoding the templated text as it is would give the model "
                     f"`{bos}` twice, so the box leaves the template's copy out.")
    lines.append(PIPELINE_NOTE)
    return "\n\n".join(lines)


def chat_unwrap(tokenizer: Any, text: str) -> str | None:
    """The user's text back from a prompt that `chat_wrap` made, or None when `text` is not such a prompt."""
    if not has_chat_template(tokenizer) or not isinstance(text, str):
        return None
    prefix, _, suffix = _render(tokenizer, _SENTINEL).partition(_SENTINEL)
    bos_text = getattr(tokenizer, "bos_token", None) or ""
    for start in {prefix, prefix[len(bos_text):] if bos_text and prefix.startswith(bos_text) else prefix}:
        if text.startswith(start) and text.endswith(suffix) and len(text) > len(start) + len(suffix):
            return text[len(start):len(text) - len(suffix)]
    return None
