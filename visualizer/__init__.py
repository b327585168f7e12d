"""Inside the LLM: look inside a transformer language model while it runs.

The notebook API is the same code the app uses:

>>> from visualizer import load_session                      # doctest: +SKIP
>>> from visualizer.analysis.next_token import top_k           # doctest: +SKIP
>>> session = load_session(model="bundled")                    # doctest: +SKIP
>>> trace = session.trace("The capital of France is")          # doctest: +SKIP
>>> top_k(trace, session.tokenizer, k=5).token_labels          # doctest: +SKIP
"""

from visualizer import gpu  # noqa: F401  (first: on ZeroGPU `spaces` must be imported before CUDA starts)
from visualizer.config import AppConfig, Limits  # noqa: E402
from visualizer.session import ModelSession, load_session  # noqa: E402

__all__ = ["AppConfig", "Limits", "ModelSession", "load_session"]
