"""Experiments on the model: direct logit attribution, ablation, activation patching, minimal pairs.

Pure functions over activations and weights (no forward pass here: visualizer/interventions.py runs the model),
usable from a notebook.
"""

from visualizer.analysis.experiments.attribution import Attribution, attribute, freeze_norm, head_outputs
from visualizer.analysis.experiments.metrics import (
    AblationResult,
    HeadGrid,
    PairDiff,
    PatchingResult,
    TokenChange,
    js_divergence,
    kl_divergence,
    normalised_restoration,
    pair_diff,
    token_changes,
)

__all__ = ["AblationResult", "Attribution", "HeadGrid", "PairDiff", "PatchingResult", "TokenChange", "attribute",
           "freeze_norm", "head_outputs", "js_divergence", "kl_divergence", "normalised_restoration", "pair_diff",
           "token_changes"]
