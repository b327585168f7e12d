"""Shared fixtures for browser tests: a headless Debian Chromium that cannot reach the internet.

Outside hosts do not resolve (``--host-resolver-rules``), so a page that needs a CDN visibly breaks,
and every request leaving localhost is recorded so a test can assert there were none. Request
interception (``page.route``) is deliberately not used: it breaks Gradio's streamed responses.

Typical use::

    @pytest.mark.browser
    def test_something(serve_blocks, new_page):
        url = serve_blocks(demo)                  # launches a gr.Blocks, closed after the test
        recorded = new_page()                     # a RecordedPage
        recorded.page.goto(url)
        ...                                       # playwright.sync_api.expect(...) on the page
        recorded.assert_clean()                   # no outside request, dialog, page error, failed load

Browser tests skip (not fail) where Chromium or the playwright package is missing; set
``CHROMIUM_PATH`` to use another binary. ``playwright install`` is not needed (and cannot run offline).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
CHROMIUM_ARGS = [
    "--no-sandbox",  # containers without user namespaces; the page only ever loads our localhost app
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    # Chromium puts <iframe sandbox> documents in their own process, and Playwright then reports
    # none of their requests (checked: Chromium 156, Playwright 1.65): keep them in-process so the
    # request recording below also sees what a sandboxed iframe loads.
    "--disable-features=IsolateSandboxedIframes",
]
NETWORK_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})


def chromium_executable() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


def is_outside_url(url: str) -> bool:
    """True for a network URL whose host is not this machine (data:, blob:, about: are not network)."""
    parts = urlsplit(url)
    return parts.scheme in NETWORK_SCHEMES and (parts.hostname or "") not in LOCAL_HOSTS


@dataclass
class RecordedPage:
    """A Playwright page plus what it did that a test usually wants to forbid."""

    page: Any  # playwright.sync_api.Page
    requests: list[str] = field(default_factory=list)  # every request URL, in order
    outside_requests: list[str] = field(default_factory=list)  # URLs of requests leaving localhost
    dialogs: list[str] = field(default_factory=list)  # "alert: 1"; dismissed automatically
    page_errors: list[str] = field(default_factory=list)  # uncaught JS exceptions (all frames)
    console_messages: list[str] = field(default_factory=list)  # "log: text" from all frames
    failed_loads: list[str] = field(default_factory=list)  # local requests that failed or got >= 400

    def assert_clean(self) -> None:
        assert self.outside_requests == [], f"requests left localhost: {self.outside_requests}"
        assert self.dialogs == [], f"dialogs opened: {self.dialogs}"
        assert self.page_errors == [], f"uncaught page errors: {self.page_errors}"
        assert self.failed_loads == [], f"local loads failed: {self.failed_loads}"


def _record(context: Any, page: Any) -> RecordedPage:
    recorded = RecordedPage(page)

    def on_request(request: Any) -> None:
        recorded.requests.append(request.url)
        if is_outside_url(request.url):
            recorded.outside_requests.append(request.url)

    def on_response(response: Any) -> None:
        if response.status >= 400 and not is_outside_url(response.url):
            recorded.failed_loads.append(f"{response.status} {response.url}")

    def on_request_failed(request: Any) -> None:
        if not is_outside_url(request.url):
            recorded.failed_loads.append(f"{request.failure} {request.url}")

    def on_dialog(dialog: Any) -> None:
        recorded.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    context.on("request", on_request)  # context-wide: iframes, popups and workers included
    context.on("response", on_response)
    context.on("requestfailed", on_request_failed)
    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: recorded.page_errors.append(str(error)))
    page.on("console", lambda message: recorded.console_messages.append(f"{message.type}: {message.text}"))
    return recorded


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium per test session, started with CHROMIUM_ARGS."""
    executable = chromium_executable()
    if executable is None:
        pytest.skip("no chromium binary (apt-get install chromium, or set CHROMIUM_PATH)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., RecordedPage]]:
    """Factory: ``new_page(**context_kwargs)`` -> RecordedPage in a fresh context, closed after the test."""
    contexts: list[Any] = []

    def make(**context_kwargs: Any) -> RecordedPage:
        context = browser.new_context(**context_kwargs)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        return _record(context, page)

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def serve_blocks() -> Iterator[Callable[..., str]]:
    """Factory: ``serve_blocks(demo, **launch_kwargs)`` launches a gr.Blocks on 127.0.0.1 -> local URL.

    Every app it launched is closed after the test.
    """
    launched: list[Any] = []

    def serve(demo: Any, **launch_kwargs: Any) -> str:
        kwargs = dict(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
        kwargs.update(launch_kwargs)
        _, local_url, _ = demo.launch(**kwargs)
        launched.append(demo)
        return local_url

    yield serve
    for demo in launched:
        demo.close()


@contextlib.contextmanager
def served_app(session: Any) -> Iterator[str]:
    """The app's whole page on `session`, launched on 127.0.0.1 with its styles and scripts; closed afterwards."""
    from visualizer.ui import build_demo, launch_options

    demo = build_demo(session)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", **launch_options())
    try:
        yield url
    finally:
        demo.close()


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    """The app on the bundled teaching model, as a classroom without a GPU gets it (one launch per module)."""
    from visualizer.config import AppConfig
    from visualizer.session import ModelSession

    with served_app(ModelSession.load(AppConfig(model="bundled", device="cpu", allow_fallback=False))) as url:
        yield url
