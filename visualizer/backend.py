"""What the tabs may ask of the model: the closed interface of `ModelSession`, declared as a Protocol.

The UI (and any notebook or benchmark) talks to the model only through these named, typed methods; nothing
runs an arbitrary function next to the model. `ModelSession` implements it (tests/test_session.py checks).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # the Protocol costs no imports at run time
    import torch

    from visualizer.analysis.architecture import ArchitectureReport
    from visualizer.analysis.experiments import AblationResult, Attribution, HeadGrid, PairDiff, PatchingResult
    from visualizer.analysis.generation import Step
    from visualizer.analysis.kv_cache import RaceUpdate, SweepUpdate
    from visualizer.analysis.sampling import BatchResult, ContinuationsStep, SamplingSettings
    from visualizer.analysis.speed import SpeedUpdate
    from visualizer.config import AppConfig
    from visualizer.dims import ModelDims
    from visualizer.self_check import SelfCheck
    from visualizer.trace import LensTop, Trace



@runtime_checkable
class ModelBackend(Protocol):
    config: AppConfig
    dims: ModelDims
    checks: SelfCheck  # the load-time self-check: which views this model can show truthfully
    tokenizer: Any  # read-only: analysis functions decode token labels with it
    banner: str | None  # why this is not the model that was asked for, if it is not

    @property
    def display_name(self) -> str: ...

    @property
    def max_prompt_tokens(self) -> int: ...

    @property
    def n_params(self) -> int: ...

    @property
    def queue_max_size(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    def ids_of(self, prompt: str | list[int]) -> torch.Tensor:
        """Token ids [pos] of a prompt, or a ValueError a learner can act on."""

    def trace(self, prompt: str | list[int]) -> Trace:
        """One forward pass's views of a prompt, cached by token ids."""

    def layer_patterns(self, trace: Trace, layer: int) -> torch.Tensor:
        """[head, query_pos, key_pos] attention weights of one layer."""

    def warm_up(self, prompt: str) -> None:
        """Compute ahead what the Next-token tab's first view of `prompt` needs (its trace and lens)."""

    def lens_top(self, trace: Trace) -> LensTop:
        """The logit lens's top-1 at every layer over the trace's last positions (computed on first request)."""

    def lens_log_probs(self, trace: Trace, pos: int) -> torch.Tensor:
        """[n_layers + 1, d_vocab] logit-lens log-probabilities at one position."""

    def generate_steps(self, prompt: str | list[int], n_steps: int,
                       first_token: int | None = None) -> Iterator[Step]: ...

    def sample_continuations(self, prompt: str | list[int], settings: SamplingSettings, n_samples: int,
                             n_tokens: int) -> Iterator[ContinuationsStep]: ...

    def batch_generate(self, prompts: list[str], n_tokens: int = 10) -> BatchResult: ...

    def kv_race(self, prompt: str | list[int], n_new_tokens: int, n_repeats: int,
                update_interval_s: float = 0.2, fresh: bool = False) -> Iterator[RaceUpdate]: ...

    def kv_sweep(self, prompt: str | list[int], lengths: list[int], n_repeats: int = 3) -> Iterator[SweepUpdate]: ...

    def architecture(self) -> ArchitectureReport: ...

    def clear_cache(self) -> None: ...

    def speed_lab(self, prompt: str | list[int], parts: Sequence[str] | None = None, n_repeats: int = 3,
                  n_new_tokens: int = 16) -> Iterator[SpeedUpdate]:
        """The chapter's speed tips timed on the loaded model, holding it alone (session_speed.py)."""

    # Experiments: interventions through the same per-thread hooks as the trace (session_experiments.py)
    def attribution(self, prompt: str | list[int], target: int | str | None = None,
                    position: int = -1) -> Attribution: ...

    def ablation(self, prompt: str | list[int], heads: list | None = None, attention_layers: list | None = None,
                 mlp_layers: list | None = None, mode: str = "zero", target: int | str | None = None,
                 position: int = -1, top_k: int = 10) -> AblationResult: ...

    def ablate_each_head(self, prompt: str | list[int], mode: str = "zero", target: int | str | None = None,
                         position: int = -1) -> HeadGrid: ...

    def patching(self, clean_prompt: str | list[int], corrupted_prompt: str | list[int], site: str = "resid",
                 clean_answer: int | str | None = None,
                 corrupted_answer: int | str | None = None) -> PatchingResult: ...

    def minimal_pair(self, prompt_a: str | list[int], prompt_b: str | list[int], layer: int = 0, head: int = 0,
                     top_k: int = 10) -> PairDiff: ...
