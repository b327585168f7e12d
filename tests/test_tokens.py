"""The chat-template wrap: the exact tokens a template adds around a prompt, and the doubled-BOS trap."""

from __future__ import annotations

import pytest

from tests.tiny_models import tiny_tokenizer
from visualizer.tokens import PIPELINE_NOTE, chat_unwrap, chat_wrap, has_chat_template, token_label

# SmolLM2-Instruct's shape of template (ChatML), with the tiny tokenizer's own special tokens as markers.
CHATML = ("{% for message in messages %}{{ '<s>' + message['role'] + '\n' + message['content'] + '</s>\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<s>assistant\n' }}{% endif %}")
# Phi-3-mini-4k-instruct's template as published in 2024 (tokenizer_config.json): it writes the BOS itself,
# and Phi-3's Llama tokenizer adds one too when it encodes.
PHI3_2024 = ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}"
             "{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}"
             "{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}{% endif %}"
             "{% endfor %}")
TRIMMING = ("{% for message in messages %}{{ '<s>user\n' + message['content'] | trim + '</s>\n' }}{% endfor %}"
            "{{ '<s>assistant\n' }}")


def _tiny(template: str | None):
    tokenizer = tiny_tokenizer.__wrapped__()  # a fresh copy: the cached one is shared read-only by other tests
    tokenizer.chat_template = template
    return tokenizer


def _labels(tokenizer, text: str, **kwargs) -> list[str]:
    return [token_label(tokenizer, i) for i in tokenizer(text, **kwargs)["input_ids"]]


def _bundled_tokenizer(template: str):
    from transformers import AutoTokenizer

    from visualizer.bundled import BUNDLED_MODEL_DIR

    tokenizer = AutoTokenizer.from_pretrained(BUNDLED_MODEL_DIR)  # adds a BOS when it encodes, as Phi-3's does
    tokenizer.chat_template = template
    return tokenizer


def test_the_added_tokens_are_the_template_around_the_text():
    tokenizer = _tiny(CHATML)
    wrapped = chat_wrap(tokenizer, "Hi there")
    assert wrapped.text == tokenizer.apply_chat_template([{"role": "user", "content": "Hi there"}], tokenize=False,
                                                         add_generation_prompt=True)
    # The pieces encoded alone (newlines and special tokens split pre-tokens, so nothing merges across them).
    assert wrapped.added_before == _labels(tokenizer, "<s>user\n")
    assert wrapped.added_after == _labels(tokenizer, "</s>\n<s>assistant\n")
    assert wrapped.added_before[0] == "<s>" and wrapped.added_before[-1] == "↵"
    assert not wrapped.bos_stripped
    assert PIPELINE_NOTE in wrapped.note and "`<s>`" in wrapped.note and "twice" not in wrapped.note


def test_a_template_bos_is_not_doubled_when_the_tokenizer_adds_one():
    tokenizer = _bundled_tokenizer(PHI3_2024)
    raw = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                        add_generation_prompt=True)
    bos = tokenizer.bos_token_id
    assert tokenizer(raw)["input_ids"][:2] == [bos, bos]  # the trap: the text's BOS plus the tokenizer's
    wrapped = chat_wrap(tokenizer, "Hi")
    assert wrapped.bos_stripped and wrapped.text == raw[len(tokenizer.bos_token):]
    ids = tokenizer(wrapped.text)["input_ids"]
    assert ids[0] == bos and ids.count(bos) == 1
    assert wrapped.added_before[0] == "<s>" and "twice" in wrapped.note


def test_no_bos_note_where_the_tokenizer_adds_none():
    tokenizer = _tiny("{{ bos_token }}" + CHATML)  # the tiny tokenizer adds no BOS, so the template's one stays
    wrapped = chat_wrap(tokenizer, "Hi")
    assert not wrapped.bos_stripped and wrapped.text.startswith("<s><s>user")
    assert wrapped.added_before[:2] == ["<s>", "<s>"]


def test_unwrap_gives_the_text_back():
    for tokenizer in (_tiny(CHATML), _bundled_tokenizer(PHI3_2024)):
        text = "The capital of\nFrance is"
        assert chat_unwrap(tokenizer, chat_wrap(tokenizer, text).text) == text
        assert chat_unwrap(tokenizer, text) is None


def test_a_trimming_template_still_finds_the_text():
    tokenizer = _tiny(TRIMMING)
    wrapped = chat_wrap(tokenizer, "  Hi there  ")
    assert wrapped.added_before == _labels(tokenizer, "<s>user\n")
    assert wrapped.added_after == _labels(tokenizer, "</s>\n<s>assistant\n")


def test_no_template_is_a_clear_error():
    tokenizer = _tiny(None)
    assert not has_chat_template(tokenizer)
    with pytest.raises(ValueError, match="no chat template"):
        chat_wrap(tokenizer, "Hi")
    assert chat_unwrap(tokenizer, "Hi") is None
    with pytest.raises(ValueError, match="empty"):
        chat_wrap(_tiny(CHATML), "   ")


def test_page_handlers_wrap_and_unwrap():
    from tests.tiny_models import tiny_model
    from visualizer.config import AppConfig
    from visualizer.session import ModelSession
    from visualizer.ui import unwrap_chat_template, wrap_in_chat_template

    session = ModelSession(tiny_model("llama"), _tiny(CHATML), AppConfig(), source="tiny-chat")
    wrapped = wrap_in_chat_template(session, "Hi")
    assert wrapped.prompt == chat_wrap(session.tokenizer, "Hi").text and "added" in wrapped.note
    assert wrap_in_chat_template(session, wrapped.prompt).prompt == wrapped.prompt  # wrapping twice: no nesting
    assert unwrap_chat_template(session, wrapped.prompt).prompt == "Hi"
    with pytest.raises(ValueError, match="nothing to unwrap"):
        unwrap_chat_template(session, "Hi")
    session.trace(wrapped.prompt)  # the templated text is a prompt the model takes


@pytest.mark.slow
def test_smollm2_template_adds_its_system_turn_and_no_second_bos():
    from transformers import AutoTokenizer

    from visualizer.smollm2 import ensure_smollm2

    tokenizer = AutoTokenizer.from_pretrained(ensure_smollm2())
    wrapped = chat_wrap(tokenizer, "The capital of France is")
    assert not wrapped.bos_stripped  # its template writes <|im_start|> (its BOS); its tokenizer adds none
    assert wrapped.added_before[0] == "<|im_start|>" and wrapped.added_before[-3:] == ["<|im_start|>", "user", "↵"]
    assert "system" in wrapped.added_before  # a default system turn when none is given
    assert wrapped.added_after == ["<|im_end|>", "↵", "<|im_start|>", "ass", "istant", "↵"]


def test_the_wrap_control_is_on_the_page_only_where_there_is_a_template():
    from tests.conftest import make_tiny_session
    from tests.tiny_models import tiny_model
    from visualizer.config import AppConfig
    from visualizer.session import ModelSession
    from visualizer.ui import build_demo

    def elem_ids(session) -> set:
        return {getattr(block, "elem_id", None) for block in build_demo(session).blocks.values()}

    assert "itl-chat-wrap" not in elem_ids(make_tiny_session("llama"))
    with_template = ModelSession(tiny_model("llama"), _tiny(CHATML), AppConfig(), source="tiny-chat")
    assert {"itl-chat-wrap", "itl-chat-unwrap", "itl-chat-note", "itl-prompt"} <= elem_ids(with_template)


def test_decoded_is_the_tokenizers_own_decode_cached_or_not():
    from tests.tiny_models import tiny_tokenizer
    from visualizer.tokens import decoded, decoded_label, visible_token

    tokenizer = tiny_tokenizer()
    for token_id in (0, 5, 17, 5):
        assert decoded(tokenizer, token_id) == tokenizer.decode([token_id])
        assert decoded_label(tokenizer, token_id) == visible_token(tokenizer.decode([token_id]))

    class Slotted:  # no __dict__ to keep a cache in: decoded every time
        __slots__ = ()

        def decode(self, ids):
            return f"<{ids[0]}>"

    assert decoded(Slotted(), 3) == "<3>"
