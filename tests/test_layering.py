"""The import rules that keep the library usable from a notebook and the UI free of tensors."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "visualizer"
RULES = {  # folder or file -> top-level modules it must not import
    "analysis": {"gradio", "plotly"},
    "figures": {"gradio", "torch"},
    "ui": {"torch", "transformers"},
    "session.py": {"gradio", "plotly"},
    "trace.py": {"gradio", "plotly"},
    "capture.py": {"gradio", "plotly"},
}
ALLOWED = {"figures/bertviz_embed.py": {"torch"}}  # bertviz takes tensors (it reads them without importing torch)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("where", list(RULES))
def test_import_rules(where):
    target = PACKAGE / where
    files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
    assert files
    for path in files:
        relative = str(path.relative_to(PACKAGE))
        forbidden = RULES[where] - ALLOWED.get(relative, set())
        assert not (_imports(path) & forbidden), f"{relative} imports {_imports(path) & forbidden}"
