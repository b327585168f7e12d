"""The session's experiments: direct logit attribution, ablation, patching and minimal pairs (a ModelSession mixin).

Each public method validates its input, looks in a small LRU keyed by token ids and parameters, and otherwise
runs its `_..._on_device` twin where the GPU is, under the session's shared lock, through the permanent capture.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch

from visualizer import gpu
from visualizer.analysis.experiments import (
    AblationResult,
    Attribution,
    HeadGrid,
    PairDiff,
    PatchingResult,
    attribute,
    kl_divergence,
    normalised_restoration,
    pair_diff,
    token_changes,
)
from visualizer.device import released_on_oom
from visualizer.interventions import (
    MODES,
    SITES,
    AblationSpec,
    ablate,
    attribution_activations,
    each_head_log_probs,
    patch_grid,
    run,
    site_names,
)
from visualizer.names import act_name, resid_label
from visualizer.validation import whole_number

CACHE_ENTRIES = 32  # results are small (a few grids); this bounds the cache to a few MiB
MAX_PATCH_TOKENS = 64  # a patching grid costs (n_layers + 1) x tokens patched runs
_creation_lock = threading.Lock()


class ExperimentsMixin:
    """Experiments on the loaded model; mixed into ModelSession (uses its encode, lock, capture, parts, key)."""

    # ----- helpers -------------------------------------------------------------------------------------
    def _experiment_cached(self, key: tuple, compute: Callable[[], Any]) -> Any:
        with _creation_lock:
            if not hasattr(self, "_experiment_cache"):
                self._experiment_cache: OrderedDict[tuple, Any] = OrderedDict()
                self._experiment_lock = threading.Lock()
        with self._experiment_lock:
            if key in self._experiment_cache:
                self._experiment_cache.move_to_end(key)
                return self._experiment_cache[key]
        result = compute()
        with self._experiment_lock:
            self._experiment_cache[key] = result
            while len(self._experiment_cache) > CACHE_ENTRIES:
                self._experiment_cache.popitem(last=False)
        return result

    def _token_id(self, token: int | str | None, name: str) -> int | None:
        """A target given as an id or as text that is exactly one token; None stays None (the default)."""
        if token is None or token == "":
            return None
        if isinstance(token, str) and not token.strip().lstrip("-").isdigit():
            ids = self.tokenizer.encode(token, add_special_tokens=False)
            if len(ids) != 1:
                raise ValueError(f"{name} {token!r} is {len(ids)} tokens; give one token (e.g. ' Paris' with its "
                                 "leading space) or a token id.")
            return int(ids[0])
        return whole_number(int(token) if isinstance(token, str) else token, name, 0, self.dims.d_vocab - 1)

    def _position(self, position, n_pos: int) -> int:
        position = whole_number(-1 if position is None else position, "position", -n_pos, n_pos - 1)
        return position % n_pos

    def _rows_per_pass(self, n_pos: int, what: str) -> int:
        """How many copies of a prompt one batched pass may hold within the memory budget (at least 1)."""
        one = self.estimate_trace_bytes(n_pos)
        self.check_budget(what, one)
        budget = getattr(getattr(self, "budget", None), "bytes", None) or self.config.limits.memory_budget_bytes
        return 1 << 30 if budget is None else max(1, budget // one)  # None: no budget, one pass per layer

    def _decode(self, token_id: int) -> str:
        return self.tokenizer.decode([int(token_id)])

    def _device_guard(self):
        return released_on_oom(self.device)

    # ----- direct logit attribution ---------------------------------------------------------------------
    def attribution(self, prompt: str | list[int], target: int | str | None = None, position: int = -1) -> Attribution:
        """Each part's direct contribution to the target's logit (default: the top-1) at `position`."""
        ids = self.ids_of(prompt)
        self.check_budget(f"Attributing {len(ids):,} tokens", 2 * self.estimate_trace_bytes(len(ids)))
        pos, target_id = self._position(position, len(ids)), self._token_id(target, "target")
        key = ("attribution", tuple(ids.tolist()), pos, target_id)
        return self._experiment_cached(key, lambda: gpu.call_on_device(
            self.key, "_attribution_on_device", ids, pos, target_id, gpu_seconds=10 + len(ids) / 50))

    def _attribution_on_device(self, ids: torch.Tensor, pos: int, target_id: int | None) -> Attribution:
        n_layers = self.dims.n_layers
        with self.lock.shared(), self._device_guard(), torch.inference_mode():
            self._count_forward()
            logits, resid, acts = attribution_activations(self.model, self.capture, ids.to(self.device), n_layers)
            target_id = int(logits[pos].argmax()) if target_id is None else target_id

            def stack(kind: str) -> torch.Tensor | None:
                names = [act_name(kind, layer) for layer in range(n_layers)]
                return torch.stack([acts[n][pos] for n in names]) if all(n in acts for n in names) else None
            head = resid[-1, pos][None]
            for module in self.parts.readout:
                head = module(head)
            uncapped = float(self.parts.lm_head(head)[0, target_id].float()) * self.dims.logit_scale
            return attribute(self.parts, self.capture.out_projs, resid[:, pos], stack("attn_out"), stack("mlp_out"),
                             stack("z"), target_id, pos, float(logits[pos, target_id]), uncapped,
                             target_text=self._decode(target_id), why_no_split=self.capture.available("mlp_out"),
                             why_no_heads=self.capture.available("z"))

    # ----- ablation ----------------------------------------------------------------------------------------
    def _spec(self, heads, attention_layers, mlp_layers, mode: str) -> AblationSpec:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        n_layers, n_heads = self.dims.n_layers, self.dims.n_heads
        pairs = []
        for pair in heads or ():
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise ValueError(f"heads must be [layer, head] pairs, got {pair!r}")
            pairs.append((whole_number(pair[0], "head's layer", 0, n_layers - 1),
                          whole_number(pair[1], "head", 0, n_heads - 1)))
        attention = [whole_number(v, "attention layer", 0, n_layers - 1) for v in attention_layers or ()]
        mlp = [whole_number(v, "MLP layer", 0, n_layers - 1) for v in mlp_layers or ()]
        if mlp and self.capture.available("mlp_out"):
            raise ValueError(f"MLP ablation is unavailable for this model: {self.capture.available('mlp_out')}.")
        if pairs and self.capture.available("z"):
            raise ValueError(f"Head ablation is unavailable for this model: {self.capture.available('z')}.")
        return AblationSpec(tuple(sorted(set(pairs))), tuple(sorted(set(attention))), tuple(sorted(set(mlp))), mode)

    def ablation(self, prompt: str | list[int], heads: list | None = None, attention_layers: list | None = None,
                 mlp_layers: list | None = None, mode: str = "zero", target: int | str | None = None,
                 position: int = -1, top_k: int = 10) -> AblationResult:
        """Zero- or mean-ablate heads ([layer, head] pairs), attention blocks and MLP blocks; before and after."""
        ids = self.ids_of(prompt)
        self.check_budget(f"Ablating on {len(ids):,} tokens", 2 * self.estimate_trace_bytes(len(ids)))
        spec = self._spec(heads, attention_layers, mlp_layers, mode)
        pos, target_id = self._position(position, len(ids)), self._token_id(target, "target")
        top_k = whole_number(top_k, "top_k", 1, self.config.limits.max_top_k)
        key = ("ablation", tuple(ids.tolist()), spec, pos, target_id, top_k)
        return self._experiment_cached(key, lambda: gpu.call_on_device(
            self.key, "_ablation_on_device", ids, spec, pos, target_id, top_k, gpu_seconds=10 + len(ids) / 25))

    def _ablation_on_device(self, ids, spec: AblationSpec, pos: int, target_id: int | None,
                            top_k: int) -> AblationResult:
        with self.lock.shared(), self._device_guard(), torch.inference_mode():
            self._count_forward()
            plain, ablated = ablate(self.model, self.capture, ids.to(self.device), spec)
        before, after = torch.log_softmax(plain[pos].cpu(), -1), torch.log_softmax(ablated[pos].cpu(), -1)
        target_id = int(before.argmax()) if target_id is None else target_id
        return AblationResult(description=spec.describe(), position=pos, target_id=target_id,
                              target_text=self._decode(target_id), log_prob_before=float(before[target_id]),
                              log_prob_after=float(after[target_id]), kl=kl_divergence(before, after),
                              changes=token_changes(before, after, top_k, self._decode))

    def ablate_each_head(self, prompt: str | list[int], mode: str = "zero", target: int | str | None = None,
                         position: int = -1) -> HeadGrid:
        """Delta log p(target) with each head alone ablated, as a [layer, head] grid (batched passes)."""
        ids = self.ids_of(prompt)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if self.capture.available("z"):
            raise ValueError(f"Head ablation is unavailable for this model: {self.capture.available('z')}.")
        rows = min(self.dims.n_heads, self._rows_per_pass(len(ids), f"Ablating each head on {len(ids):,} tokens"))
        pos, target_id = self._position(position, len(ids)), self._token_id(target, "target")
        key = ("each_head", tuple(ids.tolist()), mode, pos, target_id)
        return self._experiment_cached(key, lambda: gpu.call_on_device(
            self.key, "_each_head_on_device", ids, mode, pos, target_id, rows,
            gpu_seconds=10 + self.dims.n_layers * len(ids) / 10))

    def _each_head_on_device(self, ids, mode: str, pos: int, target_id: int | None, rows: int) -> HeadGrid:
        with self.lock.shared(), self._device_guard(), torch.inference_mode():
            ids = ids.to(self.device)
            plain, _ = ablate(self.model, self.capture, ids, AblationSpec())
            target_id = int(plain[pos].argmax()) if target_id is None else target_id
            before = float(torch.log_softmax(plain[pos], -1)[target_id])
            grid, passes = each_head_log_probs(self.model, self.capture, ids, self.dims.n_layers, self.dims.n_heads,
                                               mode, pos, target_id, rows)
            self._count_forward()
        return HeadGrid(mode=mode, position=pos, target_id=target_id, target_text=self._decode(target_id),
                        log_prob_before=before, deltas=(grid - before).numpy(), forward_passes=passes)

    # ----- activation patching -------------------------------------------------------------------------
    def patching(self, clean_prompt: str | list[int], corrupted_prompt: str | list[int], site: str = "resid",
                 clean_answer: int | str | None = None, corrupted_answer: int | str | None = None) -> PatchingResult:
        """How much of the logit difference each clean activation restores in the corrupted run, per (layer,
        position): 0 = corrupted, 1 = clean."""
        clean, corrupted = self.ids_of(clean_prompt), self.ids_of(corrupted_prompt)
        if len(clean) != len(corrupted):
            raise ValueError(f"The clean prompt has {len(clean)} tokens and the corrupted prompt {len(corrupted)}: "
                             "patching needs the same number of tokens (change a word for one that tokenizes the "
                             "same way).")
        if site not in SITES:
            raise ValueError(f"site must be one of {', '.join(SITES)}, got {site!r}")
        if site == "mlp_out" and self.capture.available("mlp_out"):
            raise ValueError(f"MLP patching is unavailable for this model: {self.capture.available('mlp_out')}.")
        if len(clean) > MAX_PATCH_TOKENS:
            raise ValueError(f"The prompts have {len(clean)} tokens; a patching grid supports at most "
                             f"{MAX_PATCH_TOKENS} (it runs the model once per cell, batched). Shorten them.")
        rows = min(len(clean), self._rows_per_pass(len(clean), f"Patching {len(clean):,} tokens"))
        answers = (self._token_id(clean_answer, "clean answer"), self._token_id(corrupted_answer, "corrupted answer"))
        key = ("patching", tuple(clean.tolist()), tuple(corrupted.tolist()), site, answers)
        return self._experiment_cached(key, lambda: gpu.call_on_device(
            self.key, "_patching_on_device", clean, corrupted, site, answers, rows,
            gpu_seconds=10 + self.dims.n_layers * len(clean) / 10))

    def _patching_on_device(self, clean, corrupted, site: str, answers, rows: int) -> PatchingResult:
        names = site_names(site, self.dims.n_layers)
        with self.lock.shared(), self._device_guard(), torch.inference_mode():
            clean, corrupted = clean.to(self.device), corrupted.to(self.device)
            self._count_forward()
            clean_last = run(self.model, self.capture, clean[None], last_n=1)[0][0, -1]
            corrupted_last = run(self.model, self.capture, corrupted[None], last_n=1)[0][0, -1]
            good = int(clean_last.argmax()) if answers[0] is None else answers[0]
            bad = int(corrupted_last.argmax()) if answers[1] is None else answers[1]
            clean_diff = float(clean_last[good] - clean_last[bad])
            corrupted_diff = float(corrupted_last[good] - corrupted_last[bad])
            if good == bad:
                raise ValueError(f"Both prompts' answers are {self._decode(good)!r}: give a clean and a corrupted "
                                 "answer that differ.")
            diffs, passes = patch_grid(self.model, self.capture, clean, corrupted, names, (good, bad), rows)
        labels = [resid_label(i) for i in range(len(names))] if site == "resid" else names
        return PatchingResult(site=site, row_labels=labels,
                              token_labels=[self._decode(int(i)) for i in corrupted.tolist()],
                              scores=normalised_restoration(diffs.numpy(), clean_diff, corrupted_diff),
                              patched_diffs=diffs.numpy(), clean_diff=clean_diff, corrupted_diff=corrupted_diff,
                              clean_answer=self._decode(good), corrupted_answer=self._decode(bad),
                              forward_passes=passes + 2)

    # ----- minimal pairs -------------------------------------------------------------------------------
    def minimal_pair(self, prompt_a: str | list[int], prompt_b: str | list[int], layer: int = 0, head: int = 0,
                     top_k: int = 10) -> PairDiff:
        """Two prompts' next-token distributions (deltas, KL, JS, rank changes) and one head's attention difference."""
        layer = whole_number(layer, "layer", 0, self.dims.n_layers - 1)
        head = whole_number(head, "head", 0, self.dims.n_heads - 1)
        top_k = whole_number(top_k, "top_k", 1, self.config.limits.max_top_k)
        trace_a, trace_b = self.trace(prompt_a), self.trace(prompt_b)
        patterns = None
        if trace_a.n_pos == trace_b.n_pos and not trace_a.attention_unavailable:
            patterns = (self.layer_patterns(trace_a, layer), self.layer_patterns(trace_b, layer))
        return pair_diff(trace_a, trace_b, top_k, self._decode, patterns, layer, head)
