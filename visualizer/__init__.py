"""Inside the LLM: look inside a transformer language model while it runs.

The notebook API is the same code the app uses:

>>> from visualizer import load_session                      # doctest: +SKIP
>>> from visualizer.analysis.next_token import top_k           # doctest: +SKIP
>>> session = load_session(model="bundled")                    # doctest: +SKIP
>>> trace = session.trace("The capital of France is")          # doctest: +SKIP
>>> top_k(trace, session.tokenizer, k=5).token_labels          # doctest: +SKIP
"""

from visualizer import gpu  # noqa: F401  (first: on ZeroGPU `spaces` must be imported before CUDA starts)

__all__ = ["AppConfig", "Limits", "ModelSession", "load_session"]


def __getattr__(name: str):
    """The public API, imported on first use: `import visualizer.bundled` alone must not pull in torch."""
    if name in ("AppConfig", "Limits"):
        from visualizer import config

        return getattr(config, name)
    if name in ("ModelSession", "load_session"):
        from visualizer import session

        return getattr(session, name)
    raise AttributeError(f"module 'visualizer' has no attribute {name!r}")
