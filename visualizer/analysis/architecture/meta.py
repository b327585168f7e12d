"""Weightless skeletons: a config's exact module tree built on the ``meta`` device, kept in a small LRU."""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

from visualizer.analysis.architecture.configs import check_sizes


class LruCache:
    """A small thread-safe LRU: Gradio calls handlers from several threads."""

    def __init__(self, maxsize: int):
        self.maxsize, self._items, self._lock = maxsize, OrderedDict(), threading.Lock()

    def get_or_make(self, key: str, make: Callable[[], Any]) -> Any:
        with self._lock:  # held while building, so two threads never build the same skeleton twice
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            value = make()
            self._items[key] = value
            if len(self._items) > self.maxsize:
                self._items.popitem(last=False)
            return value


_META_MODELS = LruCache(maxsize=12)


def config_key(config: PretrainedConfig) -> str:
    """Equal for equal configs, whoever built them (a deep copy gives the same key)."""
    return f"{type(config).__name__}:{config.to_json_string(use_diff=False)}"


def build_meta_model(config: PretrainedConfig) -> PreTrainedModel:
    """The model's exact module tree on the meta device (no memory, no weights). Cached; treat as read-only."""
    if not isinstance(config, PretrainedConfig):
        raise ValueError(f"Expected a transformers config, got {type(config).__name__}.")
    check_sizes(config.to_dict())

    def make() -> PreTrainedModel:
        try:
            with torch.device("meta"):
                return AutoModelForCausalLM.from_config(copy.deepcopy(config), attn_implementation="eager")
        except Exception as err:  # e.g. hidden size not divisible by heads, unknown activation
            raise ValueError(f"Could not build a {config.model_type} model from this config: {err}") from None

    return _META_MODELS.get_or_make(config_key(config), make)
