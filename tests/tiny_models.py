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

# The zoo: every family above plus the layouts whose rules differ (ALiBi, parallel attention + MLP, multi-query,
# Falcon's new decoder architecture, mixtures of experts, logit scaling, a norm before the blocks, an embedding
# layernorm, a projection after the final norm). name -> (model_type, overrides, expected KV heads)
_T = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=128)
ZOO_CONFIGS: dict[str, tuple[str, dict]] = {
    **TINY_CONFIGS,
    "bloom": ("bloom", dict(hidden_size=32, n_layer=2, n_head=4)),  # ALiBi, embedding layernorm
    "falcon_40b_layout": ("falcon", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_kv_heads=2,
                                         new_decoder_architecture=True, multi_query=True, alibi=False,
                                         max_position_embeddings=128)),
    "falcon_7b_layout": ("falcon", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, multi_query=True,
                                        parallel_attn=True, new_decoder_architecture=False, alibi=False,
                                        max_position_embeddings=128)),
    "falcon_alibi": ("falcon", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, multi_query=False,
                                    parallel_attn=False, new_decoder_architecture=False, alibi=True,
                                    max_position_embeddings=128)),
    "gpt_bigcode": ("gpt_bigcode", dict(n_embd=32, n_layer=2, n_head=4, n_positions=128, multi_query=True)),
    "mixtral": ("mixtral", dict(_T, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2)),
    "qwen2_moe": ("qwen2_moe", dict(_T, num_key_value_heads=2, moe_intermediate_size=16,
                                    shared_expert_intermediate_size=32, num_experts=4, num_experts_per_tok=2)),
    "cohere": ("cohere", dict(_T, num_key_value_heads=2, logit_scale=0.5)),  # logit scaling, parallel blocks
    "granite": ("granite", dict(_T, num_key_value_heads=2, logits_scaling=4.0)),  # logits divided
    "gptj": ("gptj", dict(n_embd=32, n_layer=2, n_head=4, n_positions=128, rotary_dim=4)),
    "phi": ("phi", dict(_T)),  # parallel attention + MLP, partial rotary
    "opt": ("opt", dict(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                        max_position_embeddings=128, word_embed_proj_dim=32)),  # final norm declared before blocks
    "opt_projected": ("opt", dict(hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                                  max_position_embeddings=128, word_embed_proj_dim=16)),  # project_out after it
    "mpt": ("mpt", dict(d_model=32, n_layers=2, n_heads=4, max_seq_len=128, expansion_ratio=2)),  # ALiBi
    "stablelm": ("stablelm", dict(_T, num_key_value_heads=2)),
    "starcoder2": ("starcoder2", dict(_T, num_key_value_heads=2)),
    "olmo2": ("olmo2", dict(_T, num_key_value_heads=2)),  # norms after attention and MLP
    "codegen": ("codegen", dict(n_embd=32, n_layer=2, n_head=4, n_positions=128, rotary_dim=4)),
    "gpt_neo": ("gpt_neo", dict(hidden_size=32, num_layers=2, num_heads=4, max_position_embeddings=128,
                                attention_types=[[["global", "local"], 1]], window_size=16)),
}
ZOO = list(ZOO_CONFIGS)
UNSUPPORTED_CONFIGS = {"mamba": ("mamba", dict(hidden_size=32, num_hidden_layers=2, state_size=4))}


def tiny_config(name: str):
    model_type, overrides = {**ZOO_CONFIGS, **UNSUPPORTED_CONFIGS}[name]
    return AutoConfig.for_model(model_type, **_COMMON, **overrides)


def randomize_norms(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Norm weights away from their initial identity (1 and 0), which would hide a wrong or missing norm."""
    with torch.no_grad():
        for module in model.modules():
            if "norm" not in type(module).__name__.lower():
                continue
            for name, param in module.named_parameters(recurse=False):
                noise = torch.randn(param.shape, generator=generator)
                param.copy_(1.0 + 0.5 * noise if name == "weight" else 0.2 * noise)


@functools.cache
def tiny_model(name: str, attn_implementation: str = "eager") -> PreTrainedModel:
    """A seeded random model with random norms; cached because building one costs ~0.1 s and tests share it
    read-only."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(name), attn_implementation=attn_implementation)
    randomize_norms(model, torch.Generator().manual_seed(1))
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
