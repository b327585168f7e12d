"""Architecture of a causal LM: module tree, parameter counts, fused projections, memory, KV-cache size.

Works on a loaded model or on a weightless skeleton built on the ``meta`` device from a config (a known
model shipped in ``visualizer/known_configs/`` or a pasted ``config.json``). Sizes come from
``visualizer.dims.ModelDims`` and the KV formula from ``visualizer.analysis.kv_memory``: one of each.

One job per module::

    roles       what a module does (role keys, teaching texts)
    tree        ModuleNode, module_tree: the folded tree with torch's own signatures
    fused       FusedSplit: Q/K/V and gate/up splits sized from the dimensions
    parameters  Breakdown: parameters per part, weight memory, MoE active parameters
    kv          the KV-cache calculator (KvCacheEstimate)
    configs     known configs and pasted config.json (untrusted input, its limits)
    meta        meta-device skeletons and their LRU
    report      ArchitectureReport, describe_*

Main entry points::

    describe_architecture(model) -> ArchitectureReport      # a loaded model
    describe_config(config) -> ArchitectureReport           # any config, built on meta (cached)
    describe_known_model("Phi-3-mini-4k-instruct") -> ArchitectureReport
    kv_cache_estimate(report.dims, tokens=1000, batch=1, dtype="fp16") -> KvCacheEstimate
"""

from visualizer.analysis.architecture.configs import (
    KNOWN_CONFIGS_DIR,
    MAX_CONFIG_JSON_CHARS,
    MAX_JSON_DEPTH,
    config_from_json,
    known_model_names,
    load_known_config,
)
from visualizer.analysis.architecture.fused import FusedSplit
from visualizer.analysis.architecture.kv import KvCacheEstimate, kv_cache_estimate
from visualizer.analysis.architecture.meta import build_meta_model
from visualizer.analysis.architecture.parameters import (
    WEIGHT_MEMORY_DTYPES,
    Breakdown,
    BreakdownItem,
    parameter_breakdown,
    weight_memory,
)
from visualizer.analysis.architecture.report import (
    ArchitectureReport,
    ConfigSummary,
    describe_architecture,
    describe_config,
    describe_config_json,
    describe_known_model,
    fused_projections,
)
from visualizer.analysis.architecture.roles import ROLE_EXPLANATIONS, explain_role
from visualizer.analysis.architecture.tree import ModuleNode, module_tree
from visualizer.analysis.kv_memory import DTYPE_BYTES  # the Architecture tab's dtype choices

__all__ = [
    "DTYPE_BYTES", "KNOWN_CONFIGS_DIR", "MAX_CONFIG_JSON_CHARS", "MAX_JSON_DEPTH", "ROLE_EXPLANATIONS",
    "WEIGHT_MEMORY_DTYPES", "ArchitectureReport", "Breakdown", "BreakdownItem", "ConfigSummary", "FusedSplit",
    "KvCacheEstimate", "ModuleNode", "build_meta_model", "config_from_json", "describe_architecture",
    "describe_config", "describe_config_json", "describe_known_model", "explain_role", "fused_projections",
    "known_model_names", "kv_cache_estimate", "load_known_config", "module_tree", "parameter_breakdown",
    "weight_memory",
]
