"""A new visitor's Gradio session without the up-front copy of every component's config.

Gradio's `SessionState.__init__` builds the config of every block in the app (an `inspect.signature` walk per
block) for each new session, to have them ready for `gr.DeepLinkButton`'s snapshot. This app has ~280 blocks and
no DeepLinkButton (its links are its own), so that cost, about 33 ms of server CPU per new visitor here, bought
nothing: a class of 100 arriving at once spent over 3 s of the server's two cores on it. `LazySessionState` builds
a block's config when a request first touches that block (Gradio's own per-key path) and builds the rest only if
the snapshot is ever read. Gradio's constructor still runs; it is handed a view of the app with no blocks, so its
other attributes stay Gradio's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio.state_holder as state_holder

_GRADIO_SESSION_STATE = state_holder.SessionState


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


def install_lazy_session_state() -> None:
    """New sessions are LazySessionState from now on (StateHolder looks the class up at each new session)."""
    state_holder.SessionState = LazySessionState
