"""The committed teaching model (visualizer/bundled/model) tells the chapter's story, offline.

Everything here loads the committed files; nothing is downloaded (conftest sets HF_HUB_OFFLINE).
"""

from __future__ import annotations

import subprocess
import sys
from itertools import islice
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, Phi3ForCausalLM, pipeline

from visualizer.bundled import BUNDLED_MODEL_DIR
from visualizer.bundled.corpus import COUNTRIES, generate_documents
from visualizer.bundled.train import EMAIL_PROMPT, TrainSettings, train

SEED_PROMPTS = {"The capital of France is": "Paris", "The capital of Japan is": "Tokyo",
                "The capital of Brazil is": "Brasília"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A 5M-parameter model gains nothing from threads, and two threads on a busy 2-core machine run
    ~10x slower than one (each op waits for the thread that lost its core); restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(BUNDLED_MODEL_DIR)


@pytest.fixture(scope="module")
def model():
    return AutoModelForCausalLM.from_pretrained(BUNDLED_MODEL_DIR, attn_implementation="eager").eval()


def greedy(model, tokenizer, prompts: list[str], max_new_tokens: int, extra_padding: int = 0, **kwargs) -> list[str]:
    longest = max(len(tokenizer(p)["input_ids"]) for p in prompts)
    enc = tokenizer(prompts, return_tensors="pt", padding="max_length", max_length=longest + extra_padding)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, **kwargs)
    return tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)


# ----- files and structure ----------------------------------------------------------------------------

def test_directory_is_a_small_standard_hf_model_dir():
    names = {p.name for p in BUNDLED_MODEL_DIR.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "tokenizer_config.json", "README.md"} <= names
    total = sum(p.stat().st_size for p in BUNDLED_MODEL_DIR.rglob("*") if p.is_file())
    assert total <= 25 * 1024 * 1024


def test_model_has_phi3_structure(model, tokenizer):
    assert isinstance(model, Phi3ForCausalLM)
    names = {name for name, _ in model.named_modules()}
    assert "model.layers.0.self_attn.qkv_proj" in names and "model.layers.0.mlp.gate_up_proj" in names
    assert type(model.model.norm).__name__ == "Phi3RMSNorm"
    cfg = model.config
    assert 2 <= cfg.num_hidden_layers <= 8 and 2 <= cfg.num_attention_heads <= 8
    assert 128 <= cfg.hidden_size <= 512
    assert not cfg.tie_word_embeddings  # untied, like Phi-3
    assert cfg.vocab_size == len(tokenizer) <= 4096
    assert cfg.max_position_embeddings >= 512
    assert next(model.parameters()).dtype == torch.float32


def test_tokenizer_adds_bos_and_keeps_capitals_whole(tokenizer, model):
    ids = tokenizer("The capital of France is")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id == model.config.bos_token_id
    assert tokenizer.eos_token_id == model.config.eos_token_id
    assert tokenizer.pad_token_id == model.config.pad_token_id
    assert len({tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id}) == 3
    assert tokenizer.padding_side == "left"
    assert tokenizer.model_max_length == model.config.max_position_embeddings
    for capital in ("Paris", "Tokyo", "Brasília"):
        assert len(tokenizer.tokenize(" " + capital)) == 1, tokenizer.tokenize(" " + capital)
    assert tokenizer.decode(tokenizer(" Brasília")["input_ids"], skip_special_tokens=True) == " Brasília"


def test_importing_the_package_loads_nothing_heavy():
    code = "import sys, visualizer.bundled as b; assert b.BUNDLED_MODEL_DIR.is_dir(); print('torch' in sys.modules)"
    repo_root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo_root)
    assert out.stdout.strip() == "False"


# ----- what the chapter shows -------------------------------------------------------------------------

@pytest.mark.parametrize("prompt", list(SEED_PROMPTS))
def test_seed_prompts_predict_their_capital_with_probability_at_least_half(model, tokenizer, prompt):
    capital = SEED_PROMPTS[prompt]
    enc = tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        probs = model(**enc).logits[0, -1].softmax(-1)  # [d_vocab]
    first_id = tokenizer(" " + capital, add_special_tokens=False)["input_ids"][0]
    assert int(probs.argmax()) == first_id
    assert float(probs[first_id]) >= 0.5


def test_capital_accuracy_over_all_countries_is_at_least_95_percent(model, tokenizer):
    prompts = [f"The capital of {c.name} is" for c in COUNTRIES]
    continuations = greedy(model, tokenizer, prompts, max_new_tokens=8)
    correct = [text.startswith(" " + c.capital) for c, text in zip(COUNTRIES, continuations, strict=True)]
    assert len(COUNTRIES) >= 100
    assert sum(correct) / len(correct) >= 0.95, [p for p, ok in zip(prompts, correct, strict=True) if not ok]


def test_left_padded_batch_gives_the_three_capitals_and_matches_single_prompts(model, tokenizer):
    prompts = list(SEED_PROMPTS)
    # The three seed prompts tokenize to the same length here, so pad beyond the longest to exercise padding.
    enc = tokenizer(prompts, return_tensors="pt", padding="max_length",
                    max_length=max(len(tokenizer(p)["input_ids"]) for p in prompts) + 3)
    assert (enc["attention_mask"] == 0).any()
    assert (enc["attention_mask"][:, -1] == 1).all()  # left padding: every row ends on a real token
    texts = greedy(model, tokenizer, prompts, max_new_tokens=4, extra_padding=3)
    for prompt, text in zip(prompts, texts, strict=True):
        assert text.startswith(" " + SEED_PROMPTS[prompt]), (prompt, text)
    with torch.inference_mode():
        batch_logits = model(**enc).logits[:, -1]  # [batch, d_vocab]
        for row, prompt in enumerate(prompts):
            single = model(**tokenizer(prompt, return_tensors="pt")).logits[0, -1]
            torch.testing.assert_close(batch_logits[row], single, atol=1e-4, rtol=1e-4)


def test_apology_email_prompt_continues_like_an_email(model, tokenizer):
    text = greedy(model, tokenizer, [EMAIL_PROMPT], max_new_tokens=60)[0]
    assert text.lstrip().startswith("Subject:"), text
    assert "Dear Sarah," in text, text


def test_greedy_text_is_identical_with_and_without_kv_cache(model, tokenizer):
    prompts = ["The capital of France is", EMAIL_PROMPT]
    with_cache = greedy(model, tokenizer, prompts, max_new_tokens=40, use_cache=True)
    without_cache = greedy(model, tokenizer, prompts, max_new_tokens=40, use_cache=False)
    assert with_cache == without_cache


def test_text_generation_pipeline_loads_the_directory():
    generator = pipeline("text-generation", model=str(BUNDLED_MODEL_DIR))
    out = generator("The capital of Japan is", max_new_tokens=3, do_sample=False)
    assert out[0]["generated_text"].startswith("The capital of Japan is Tokyo")


# ----- corpus and training script ---------------------------------------------------------------------

def test_corpus_is_deterministic_and_covers_the_fact_families():
    first = list(islice(generate_documents(seed=3), 3000))
    assert first == list(islice(generate_documents(seed=3), 3000))
    assert first != list(islice(generate_documents(seed=4), 3000))
    text = "\n".join(first)
    for needle in ("The capital of", "is the capital of", "Q: What is the capital of", "The currency of",
                   "people speak", "The opposite of", "The day after", "Write an email apologizing to",
                   "Subject:", "Dear "):
        assert needle in text, needle
    assert len({c.name for c in COUNTRIES}) == len(COUNTRIES) >= 100


@pytest.mark.slow
def test_training_script_with_a_tiny_budget_writes_a_loadable_model(tmp_path):
    # the real pipeline end to end, with a small corpus sample and a narrow model to keep it fast
    settings = TrainSettings(max_steps=2, tokenizer_docs=2000, batch_rows=2, max_minutes=5, threads=1,
                             model_shape=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                              num_attention_heads=2, num_key_value_heads=2))
    report = train(tmp_path, settings, log=lambda *_: None)
    assert report.steps == 2 and report.parameters > 0
    assert (tmp_path / "README.md").read_text().count("Phi-3") >= 1
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(model, Phi3ForCausalLM)
    enc = tokenizer("The capital of France is", return_tensors="pt")
    with torch.inference_mode():
        logits = model(**enc).logits  # [batch, pos, d_vocab]
    assert logits.shape == (1, enc["input_ids"].shape[1], len(tokenizer))
