"""The import rules that keep the library usable from a notebook and the UI free of tensors."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "visualizer"
RULES = {  # folder or file -> top-level modules it must not import
    "analysis": {"gradio", "plotly"},
    "runs": {"gradio", "plotly"},
    "figures": {"gradio", "torch"},
    "ui": {"torch", "transformers"},
    "session.py": {"gradio", "plotly"},
    "trace.py": {"gradio", "plotly"},
    "capture.py": {"gradio", "plotly"},
    "interventions.py": {"gradio", "plotly"},
    "session_experiments.py": {"gradio", "plotly"},
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


def _files(where: str) -> list[Path]:
    """The package's modules under a folder, or the one module named."""
    target = PACKAGE / where
    files = sorted(target.rglob("*.py")) if target.is_dir() else [target]
    assert files, where
    return files


@pytest.mark.parametrize("where", list(RULES))
def test_import_rules(where):
    files = _files(where)
    for path in files:
        relative = str(path.relative_to(PACKAGE))
        forbidden = RULES[where] - ALLOWED.get(relative, set())
        assert not (_imports(path) & forbidden), f"{relative} imports {_imports(path) & forbidden}"


# ----- the package's own import directions, and no cycles -------------------------------------------------------
# Data flows one way: prompt -> tokens -> one forward pass -> analysis -> figures -> tabs. A module may import the
# layers below it, never above.
INTERNAL_RULES = {  # folder or module -> visualizer modules it must not import
    "analysis": {"session", "ui", "figures", "runs", "loading", "interventions", "session_experiments"},
    "figures": {"session", "ui", "runs", "loading", "capture", "interventions", "session_experiments"},
    "runs": {"session", "ui", "figures"},
    "ui": {"session", "loading", "capture", "model_parts", "runs", "interventions"},
    "dims.py": {"analysis", "figures", "ui", "session", "runs", "trace", "capture", "model_parts"},
    "names.py": {"analysis", "figures", "ui", "session", "runs", "trace", "capture", "model_parts"},
    "tokens.py": {"analysis", "figures", "ui", "session", "runs", "trace", "capture", "model_parts"},
    "trace.py": {"analysis", "figures", "ui", "session", "runs"},
    "capture.py": {"analysis", "figures", "ui", "session", "runs", "trace"},
    "model_parts.py": {"analysis", "figures", "ui", "session", "runs", "trace", "capture"},
    "session.py": {"ui", "figures"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _internal_imports(path: Path) -> set[str]:
    """visualizer modules imported at module level (TYPE_CHECKING blocks and function bodies excluded)."""
    found: set[str] = set()

    def walk(nodes):
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                walk(node.orelse)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("visualizer"))
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("visualizer"):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.If | ast.Try):
                walk(node.body)
                walk(node.orelse)
                for handler in getattr(node, "handlers", []):
                    walk(handler.body)

    walk(ast.parse(path.read_text(encoding="utf-8")).body)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _internal_imports(path) if m in modules and m != name} for name, path in modules.items()}


@pytest.mark.parametrize("where", list(INTERNAL_RULES))
def test_internal_import_directions(where):
    files = _files(where)
    for path in files:
        for imported in _internal_imports(path):
            top = imported.removeprefix("visualizer.").split(".")[0]
            assert top not in INTERNAL_RULES[where], f"{path.relative_to(PACKAGE)} imports {imported}"


def test_no_import_cycles():
    graph, state, cycles = _graph(), {}, []

    def visit(module, stack):
        state[module] = "open"
        stack.append(module)
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert not cycles, cycles
