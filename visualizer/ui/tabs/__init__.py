"""The tabs, in the order the page shows them. Each module has TITLE and render(session, prompt, sequence)."""

from visualizer.ui.tabs import architecture, attention, experiments, kv_cache, next_token, sampling, speed

TABS = [architecture, next_token, attention, sampling, kv_cache, speed, experiments]
