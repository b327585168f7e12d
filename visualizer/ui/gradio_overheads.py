"""Two costs Gradio pays on every server for features this app does not use, removed.

1. A new visitor's session: Gradio's `SessionState.__init__` builds the config of every block in the app (an
`inspect.signature` walk per block) for each new session, to have them ready for `gr.DeepLinkButton`'s snapshot.
This app has ~280 blocks and no DeepLinkButton (its links are its own), so that cost, about 33 ms of server CPU
per new visitor here, bought nothing: a class of 100 arriving at once spent over 3 s of the server's two cores
on it. `LazySessionState` builds a block's config when a request first touches that block (Gradio's own per-key
path) and builds the rest only if the snapshot is ever read. Gradio's constructor still runs; it is handed a view
of the app with no blocks, so its other attributes stay Gradio's.

2. The first request: Gradio wraps every request in a switch to matplotlib's "agg" backend, importing matplotlib
(a dependency of mpld3, whose d3 script the bertviz views use) on the first one: 0.17 s for the first visitor.
This app draws no matplotlib figure; the switch now runs only once something has imported matplotlib, and
the CLI names "agg" in MPLBACKEND for anything that does.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import gradio.state_holder as state_holder
import gradio.utils as gradio_utils

_GRADIO_SESSION_STATE = state_holder.SessionState
_GRADIO_BACKEND_SWITCH = gradio_utils.MatplotlibBackendMananger  # sic: Gradio's spelling


class _NoBlocks:
    """What SessionState.__init__ reads of a Blocks (its default config), with no blocks to pre-build."""

    def __init__(self, blocks: Any) -> None:
        self.default_config = blocks.default_config
        self.blocks: dict = {}


class LazySessionState(_GRADIO_SESSION_STATE):
    def __init__(self, blocks: Any) -> None:
        super().__init__(_NoBlocks(blocks))
        self._app_block_ids = set(blocks.blocks)

    @property
    def components(self) -> Iterator[dict]:
        """Every block's config, as Gradio's snapshot reads them: the ones not built yet are built now."""
        for key, block in self.blocks_config.blocks.items():
            if key in self._app_block_ids and key not in self.config_values:
                self.config_values[key] = self.blocks_config.config_for_block(key, [], block)
        yield from super().components


class BackendSwitchOnceImported(_GRADIO_BACKEND_SWITCH):
    """Gradio's per-request switch to the "agg" backend, skipped while matplotlib is not imported."""

    def __enter__(self) -> None:
        self._switched = "matplotlib" in sys.modules
        if self._switched:
            super().__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        if self._switched:
            super().__exit__(*exc_info)


def install() -> None:
    """From now on new sessions are LazySessionState (StateHolder looks the class up for each new session) and
    requests switch matplotlib's backend only once it is imported (route_utils looks it up per request)."""
    state_holder.SessionState = LazySessionState
    gradio_utils.MatplotlibBackendMananger = BackendSwitchOnceImported
