"""The bundled teaching model: a small Phi-3-shaped model trained on this project's own corpus.

Only a path lives here (importing this package loads nothing); `visualizer.bundled.train` rebuilds the
directory from scratch and `visualizer.bundled.corpus` generates its training text.
"""

from pathlib import Path

BUNDLED_MODEL_DIR: Path = Path(__file__).resolve().parent / "model"

__all__ = ["BUNDLED_MODEL_DIR"]
