"""The Sampling tab's pure analysis: the processed distribution is the one transformers samples from."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import GenerationConfig

from tests.tiny_models import tiny_model, tiny_tokenizer
from visualizer.analysis.sampling import (
    CUT_GREEDY,
    CUT_MASKED,
    CUT_TOP_K,
    CUT_TOP_P,
    KEPT,
    SamplingSettings,
    draw_samples,
    entropy,
    process_logits,
    tv_bound,
)
from visualizer.tokens import token_text

D_VOCAB = 320
SETTINGS_GRID = [
    SamplingSettings(temperature=t, top_k=k, top_p=p, seed=0)
    for t in (0.3, 1.0, 1.7) for k in (0, 1, 7, 400) for p in (0.05, 0.6, 0.95, 1.0)
]
PROMPTS = ["The capital of France is", "Hi", "Attention lets each token look at the", "one two"]


def random_logits(seed: int, scale: float = 2.0, d_vocab: int = D_VOCAB) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(d_vocab, generator=generator) * scale


def transformers_processed_scores(logits: torch.Tensor, settings: SamplingSettings) -> torch.Tensor:
    """The processor list that generate() itself builds for these settings, applied to ``logits``."""
    model = tiny_model("llama")
    config = GenerationConfig(do_sample=True, temperature=settings.temperature, top_k=settings.top_k,
                              top_p=settings.top_p)
    config, _ = model._prepare_generation_config(config)
    processors = model._get_logits_processor(config, input_ids_seq_length=1, device="cpu")
    input_ids = torch.zeros((1, 1), dtype=torch.long)
    return processors(input_ids, logits[None, :].float())[0]


def transformers_processed_probs(logits: torch.Tensor, settings: SamplingSettings) -> torch.Tensor:
    return torch.softmax(transformers_processed_scores(logits, settings), dim=-1)


# --- settings validation ---------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("temperature", -0.1, "temperature"), ("temperature", float("nan"), "temperature"),
    ("temperature", float("inf"), "temperature"), ("temperature", 99.0, "temperature"),
    ("temperature", 1e-6, "temperature"), ("temperature", "hot", "temperature"),
    ("top_p", 0.0, "top-p"), ("top_p", 1.01, "top-p"), ("top_p", float("nan"), "top-p"),
    ("top_k", -1, "top-k"), ("top_k", 2.5, "top-k"), ("seed", -3, "seed"), ("seed", 2**64, "seed"),
])
def test_bad_settings_raise_a_clear_value_error(field, value, message):
    with pytest.raises(ValueError, match=message):
        SamplingSettings(**{field: value}).validated()


def test_validated_coerces_types_and_respects_passed_limits():
    settings = SamplingSettings(temperature=1, top_k=5.0, top_p=1, seed=7.0).validated()
    assert (type(settings.temperature), type(settings.top_k), type(settings.top_p), type(settings.seed)) == \
        (float, int, float, int)
    with pytest.raises(ValueError, match="from 0 to 3"):
        SamplingSettings(top_k=4).validated(max_top_k=3)
    with pytest.raises(ValueError, match="from 0 to 2"):
        SamplingSettings(temperature=2.5).validated(max_temperature=2.0)


def test_top_k_beyond_the_vocabulary_cuts_nothing_and_says_so():
    result = process_logits(random_logits(1), SamplingSettings(top_k=5000).validated())
    assert result.n_kept == D_VOCAB and any("cuts nothing" in note for note in result.notes)


def test_processor_list_matches_the_one_generate_builds():
    model = tiny_model("llama")
    for settings in SETTINGS_GRID:
        config, _ = model._prepare_generation_config(GenerationConfig(**settings.generate_kwargs()))
        theirs = model._get_logits_processor(config, input_ids_seq_length=1, device="cpu")
        ours = settings.logits_processors()
        assert [type(p) for p in ours] == [type(p) for p in theirs]


# --- the processed distribution --------------------------------------------------------------------

@pytest.mark.parametrize("settings", SETTINGS_GRID, ids=str)
def test_random_logits_match_transformers_processors(settings):
    for seed in range(3):
        logits = random_logits(seed, scale=(0.5, 2.0, 6.0)[seed])
        result = process_logits(logits, settings.validated())
        expected_scores = transformers_processed_scores(logits, settings)
        expected = torch.softmax(expected_scores, dim=-1).numpy()
        np.testing.assert_allclose(result.processed_probs, expected, atol=1e-6, rtol=0)
        assert result.processed_probs.sum() == pytest.approx(1.0, abs=1e-5)
        assert np.array_equal(result.kept, torch.isfinite(expected_scores).numpy())
        assert result.n_kept == result.kept.sum() >= 1


@pytest.mark.parametrize("settings", SETTINGS_GRID, ids=str)
def test_matches_an_independent_float64_reference(settings):
    """Temperature, then the k largest, then the smallest prefix (by probability) whose mass reaches p."""
    logits = random_logits(11, scale=2.0).double().numpy()
    scaled = logits / settings.temperature
    order = np.argsort(-scaled, kind="stable")
    keep = np.zeros(D_VOCAB, dtype=bool)
    n_top_k = D_VOCAB if settings.top_k == 0 else min(settings.top_k, D_VOCAB)
    keep[order[:n_top_k]] = True
    probs = np.where(keep, np.exp(scaled - scaled.max()), 0.0)
    probs /= probs.sum()
    cumulative = np.cumsum(probs[order])
    if settings.top_p < 1.0:
        n_nucleus = int(np.searchsorted(cumulative, settings.top_p) + 1)  # first index with mass >= p
        assert min(abs(cumulative[n_nucleus - 1:n_nucleus + 1] - settings.top_p)) > 1e-5  # no float ambiguity
        keep[order[n_nucleus:]] = False
    expected = np.where(keep, probs, 0.0) / np.where(keep, probs, 0.0).sum()
    result = process_logits(torch.from_numpy(logits).float(), settings.validated())
    np.testing.assert_allclose(result.processed_probs, expected, atol=1e-6, rtol=0)
    assert result.n_kept == keep.sum()


def test_top_p_set_is_minimal_even_with_ties():
    # many exactly tied logits around the boundary: the set transformers keeps must reach p,
    # and dropping its least likely token must fall short of p
    logits = torch.tensor([3.0, 2.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 0.0, 0.0] * 32)
    for top_p in (0.1, 0.3, 0.5, 0.77, 0.9, 0.99):
        result = process_logits(logits, SamplingSettings(top_p=top_p).validated())
        expected = transformers_processed_probs(logits, SamplingSettings(top_p=top_p))
        np.testing.assert_allclose(result.processed_probs, expected.numpy(), atol=1e-6, rtol=0)
        kept_probs = np.sort(result.pre_top_p_probs[result.kept])
        assert kept_probs.sum() >= top_p - 1e-6
        assert kept_probs[1:].sum() < top_p + 1e-6  # without its least likely token it falls short
        # display order puts every kept token before every cut one, so the curve crosses p at the line
        assert result.kept[result.order[: result.n_kept]].all()
        assert result.cumulative_pre_top_p[result.n_kept - 1] >= top_p - 1e-6


def test_top_k_keeps_every_token_tied_with_the_kth_like_transformers():
    logits = torch.tensor([5.0, 4.0, 3.0, 3.0, 3.0, 1.0] + [0.0] * 10)
    result = process_logits(logits, SamplingSettings(top_k=3).validated())
    assert result.n_after_top_k == 5
    assert any("tie" in note for note in result.notes)
    expected = transformers_processed_probs(logits, SamplingSettings(top_k=3))
    np.testing.assert_allclose(result.processed_probs, expected.numpy(), atol=1e-6, rtol=0)
    assert set(np.flatnonzero(result.cut_stage == CUT_TOP_K)) == set(range(5, 16))


def test_stages_entropies_and_masses_are_consistent():
    logits = random_logits(3, scale=2.0)
    result = process_logits(logits, SamplingSettings(temperature=0.7, top_k=20, top_p=0.6).validated())
    raw = torch.softmax(logits, -1).numpy()
    np.testing.assert_allclose(result.raw_probs, raw, atol=1e-7)
    np.testing.assert_allclose(result.tempered_probs, torch.softmax(logits / 0.7, -1).numpy(), atol=1e-6)
    assert set(np.unique(result.cut_stage)) <= {KEPT, CUT_TOP_K, CUT_TOP_P}
    assert (result.cut_stage == CUT_TOP_K).sum() == D_VOCAB - 20
    assert result.kept_mass_raw == pytest.approx(raw[result.kept].sum(), abs=1e-6)
    assert result.entropy_raw == pytest.approx(-(raw * np.log(raw)).sum(), abs=1e-5)
    assert result.effective_candidates_processed <= result.n_kept + 1e-6
    assert 1.0 <= result.effective_candidates_raw <= D_VOCAB
    assert sorted(result.order.tolist()) == list(range(D_VOCAB))
    assert result.cumulative_pre_top_p[-1] == pytest.approx(1.0, abs=1e-5)


def test_temperature_zero_is_greedy():
    logits = random_logits(5)
    logits[17] = logits[42] = logits.max() + 1.0  # a tie: torch.argmax and generate() pick the first
    result = process_logits(logits, SamplingSettings(temperature=0, top_k=5, top_p=0.5).validated())
    assert result.is_greedy and result.greedy_token_id == 17 == int(torch.argmax(logits))
    assert result.processed_probs[17] == 1.0 and result.processed_probs.sum() == 1.0
    assert result.n_kept == 1 and (result.cut_stage[np.arange(D_VOCAB) != 17] == CUT_GREEDY).all()
    assert result.entropy_processed == 0.0 and result.notes


def test_bad_logits_raise_value_error():
    with pytest.raises(ValueError, match="shape"):
        process_logits(torch.zeros(2, 5), SamplingSettings())
    with pytest.raises(ValueError, match="NaN"):
        process_logits(torch.tensor([0.0, float("nan"), 1.0]), SamplingSettings())
    masked = torch.tensor([1.0, float("-inf"), 0.0])
    result = process_logits(masked, SamplingSettings(temperature=0.5))
    assert result.cut_stage[1] == CUT_MASKED and result.processed_probs[1] == 0.0
    assert result.order[-1] == 1



def test_token_text_shows_partial_utf8_as_bytes():
    tokenizer = tiny_tokenizer()
    texts = [token_text(tokenizer, i) for i in range(tokenizer.vocab_size)]
    assert "\ufffd" not in "".join(texts)
    assert " capital" in texts and "\\xe2" in texts


# --- empirical check -------------------------------------------------------------------------------

def test_tv_bound_follows_its_derivation():
    probs = np.full(100, 0.01)
    n = 10_000
    mean_term = 0.5 * 100 * math.sqrt(0.01 * 0.99 / n)
    assert tv_bound(probs, n, 0.999) == pytest.approx(mean_term + math.sqrt(math.log(1000) / (2 * n)))
    assert tv_bound(probs, 4 * n) < tv_bound(probs, n)  # shrinks like 1/sqrt(n)


@pytest.mark.parametrize("settings", [SamplingSettings(1.0, 0, 1.0, 1), SamplingSettings(0.5, 0, 0.9, 2),
                                      SamplingSettings(1.5, 50, 1.0, 3), SamplingSettings(0.8, 5, 0.7, 4)],
                         ids=str)
def test_empirical_frequencies_of_10000_draws_are_within_the_tv_bound(settings):
    result = process_logits(random_logits(7, scale=1.5), settings.validated())
    empirical = draw_samples(result, 10_000)
    assert empirical.counts.sum() == 10_000 and empirical.seed == settings.seed
    assert (empirical.counts[~result.kept] == 0).all()  # cut tokens are never drawn
    assert empirical.tv_distance <= empirical.tv_bound < 0.5
    assert empirical.within_bound
    # the test has power: against a visibly different distribution the same draws break the bound
    other = np.roll(result.processed_probs, 1)
    assert 0.5 * np.abs(empirical.freqs - other).sum() > tv_bound(other, 10_000)


def test_draws_are_reproducible_per_seed_and_greedy_draws_the_argmax():
    result = process_logits(random_logits(8), SamplingSettings(seed=5).validated())
    assert np.array_equal(draw_samples(result, 1000).counts, draw_samples(result, 1000, seed=5).counts)
    assert not np.array_equal(draw_samples(result, 1000).counts, draw_samples(result, 1000, seed=6).counts)
    greedy = process_logits(random_logits(8), SamplingSettings(temperature=0).validated())
    assert draw_samples(greedy, 500).counts[greedy.greedy_token_id] == 500


def test_sample_count_limits():
    result = process_logits(random_logits(0), SamplingSettings())
    for bad in (0, -5, 10**9, 2.5, float("nan"), "many"):
        with pytest.raises(ValueError, match="number of samples"):
            draw_samples(result, bad)
    with pytest.raises(ValueError, match="from 1 to 50"):
        draw_samples(result, 51, max_samples=50)


# --- streamed continuations ------------------------------------------------------------------------

def test_underflowed_kept_tokens_are_reported_and_results_are_read_only():
    result = process_logits(random_logits(2, scale=20.0), SamplingSettings(temperature=0.01).validated())
    assert result.n_kept == D_VOCAB and any("underflow" in note for note in result.notes)
    with pytest.raises(ValueError):
        result.processed_probs[0] = 1.0


def test_entropy_helper():
    assert entropy(np.array([1.0, 0.0])) == 0.0
    assert entropy(np.full(8, 0.125)) == pytest.approx(math.log(8))


# --- the bundled teaching model (built by visualizer.bundled.train; skipped until it exists) --------------
