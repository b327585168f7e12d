"""Tiny random-weight causal LMs of several architectures, built from configs (no network).

Every family keeps the structure that matters to the app: grouped-query attention where the real
model has it (Llama, Mistral, Qwen2, Gemma), Phi-3's fused ``qkv_proj``/``gate_up_proj``, GPT-2's
Conv1D ``c_attn`` and learned positions, tied embeddings where the family ties them.
"""

from __future__ import annotations

import functools

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

VOCAB = 320  # 256 byte symbols + a few merges + specials: see tiny_tokenizer()

_COMMON = dict(vocab_size=VOCAB, bos_token_id=1, eos_token_id=2, pad_token_id=0)

# name -> (model_type, config overrides)
TINY_CONFIGS: dict[str, tuple[str, dict]] = {
    "gpt2": ("gpt2", dict(n_embd=32, n_layer=2, n_head=4, n_positions=128)),
    "llama": ("llama", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)),
    "phi3": ("phi3", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                          original_max_position_embeddings=128)),
    "qwen2": ("qwen2", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                            tie_word_embeddings=True)),
    "mistral": ("mistral", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=2,
                                max_position_embeddings=128, sliding_window=None)),
    "gemma": ("gemma", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=1, head_dim=8,
                            max_position_embeddings=128)),
    "gemma2": ("gemma2", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                              max_position_embeddings=128, sliding_window=64)),
    "gpt_neox": ("gpt_neox", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, max_position_embeddings=128)),
}

ARCHITECTURES = list(TINY_CONFIGS)


def tiny_config(name: str):
    model_type, overrides = TINY_CONFIGS[name]
    return AutoConfig.for_model(model_type, **_COMMON, **overrides)


@functools.cache
def tiny_model(name: str, attn_implementation: str = "eager") -> PreTrainedModel:
    """A seeded random model; cached because building one costs ~0.1 s and tests share it read-only."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(name), attn_implementation=attn_implementation)
    return model.eval()


_TOKENIZER_TEXT = [
    "The capital of France is Paris.", "The capital of Japan is Tokyo.",
    "Write an email apologizing to Sarah for the tragic gardening mishap.",
    "Attention lets each token look at the tokens before it.", "one two three four five six",
]


@functools.cache
def tiny_tokenizer():
    """A byte-level BPE tokenizer trained in a few ms on a fixed text: any string encodes, offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(_TOKENIZER_TEXT, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>")
