"""Checks on a race or sweep request against the server's limits, before any model work.

Bounds come from the app's `visualizer.config.Limits` (`max_prompt_tokens`, `max_new_tokens`, `max_repeats`,
`max_sweep_points`); the sweep's largest N is `max_new_tokens`. Slider values may arrive as floats (50.0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from visualizer.validation import whole_number

MIN_SWEEP_REPEATS = 3  # a median and a spread need three runs of each length
MAX_SWEEP_REPEATS = 5  # default upper bound until config.Limits carries max_sweep_repeats
MIN_SWEEP_POINTS = 3  # a quadratic through fewer points always fits


def validate_race_request(n_prompt_tokens: int, n_new_tokens: Any, n_repeats: Any, limits: Any,
                          max_positions: int | None = None) -> tuple[int, int]:
    """(n_new_tokens, n_repeats) as ints, or ValueError with a message a learner can act on.

    `limits`: the app's Limits (any object with max_prompt_tokens, max_new_tokens, max_repeats).
    """
    n_new_tokens = whole_number(n_new_tokens, "New tokens", 1, limits.max_new_tokens)
    n_repeats = whole_number(n_repeats, "Repeats", 1, limits.max_repeats)
    if n_prompt_tokens < 1:
        raise ValueError("The prompt is empty: type at least one word so the model has something to continue.")
    if n_prompt_tokens > limits.max_prompt_tokens:
        raise ValueError(f"The prompt has {n_prompt_tokens} tokens; the timing tab accepts at most "
                         f"{limits.max_prompt_tokens}. Shorten the prompt.")
    if max_positions is not None and n_prompt_tokens + n_new_tokens > max_positions:
        raise ValueError(f"The prompt ({n_prompt_tokens} tokens) plus {n_new_tokens} new tokens is longer than "
                         f"the model's context of {max_positions} tokens. Use fewer new tokens or a shorter prompt.")
    return n_new_tokens, n_repeats


def validate_sweep_request(lengths: Sequence[Any], n_repeats: Any, limits: Any,
                           max_sweep_repeats: int = MAX_SWEEP_REPEATS) -> tuple[list[int], int]:
    """(the N values sorted and de-duplicated, n_repeats), or ValueError.

    `limits`: the app's Limits (max_sweep_points, max_new_tokens: the largest N).
    """
    max_n = limits.max_new_tokens
    values = sorted({whole_number(n, "Sweep token counts", 2, max_n) for n in lengths})
    if len(values) < MIN_SWEEP_POINTS:
        raise ValueError(f"A length sweep needs at least {MIN_SWEEP_POINTS} different token counts to fit a curve "
                         f"(got {values}).")
    if len(values) > limits.max_sweep_points:
        raise ValueError(f"A length sweep may have at most {limits.max_sweep_points} token counts "
                         f"(got {len(values)}).")
    n_repeats = whole_number(n_repeats, "Sweep repeats", MIN_SWEEP_REPEATS, max(max_sweep_repeats, MIN_SWEEP_REPEATS))
    return values, n_repeats


def default_sweep_lengths(max_new_tokens: int, n_points: int = 5) -> list[int]:
    """Evenly spaced N values up to `max_new_tokens` (5 points: a quadratic through 3 always fits).

    >>> default_sweep_lengths(200)
    [40, 80, 120, 160, 200]
    """
    if max_new_tokens < 2 * n_points:
        raise ValueError(f"A sweep of {n_points} points needs a limit of at least {2 * n_points} new tokens.")
    return sorted({round(max_new_tokens * (i + 1) / n_points) for i in range(n_points)})
