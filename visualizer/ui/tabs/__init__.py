"""The tabs, in the order the page shows them. Each module has TITLE and render(session, prompt, sequence)."""

from visualizer.ui.tabs import attention, next_token

TABS = [next_token, attention]
