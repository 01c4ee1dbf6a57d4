"""The /explore page in headless Chromium: points drawn, hover shows the text, a click lists
neighbours, two picks decode the interpolation path (or show the API's error plainly).

Needs Debian's ``chromium`` (``make test`` installs it when apt-get can) and the ``playwright``
package, which drives that browser; nothing is downloaded (never ``playwright install``).
Without either the tests skip, saying why. The server is uvicorn in a thread of this process,
on a free port, over a temporary index folder, so the session's encoder is reused. A
screenshot is left at ``tests/artifacts/explore.png``.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.explore.fixtures import NEGATIVE, NEUTRAL, POSITIVE, documents

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip("Debian's chromium is not installed (`apt-get install chromium`; `make test` tries it)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                                   "(pip install -e '.[dev]')")
    with sync_api.sync_playwright() as pw:
        try:
            instance = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        except Exception as exc:  # a browser that cannot start here (missing libraries, no /dev/shm...)
            pytest.skip(f"chromium at {executable} did not start: {str(exc).splitlines()[0]}")
        yield instance
        instance.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve(app_factory: Callable[..., Any]) -> Iterator[Callable[..., str]]:
    """Start the API (uvicorn, in a thread) on a free port with a small 'films' collection;
    returns its base URL. Servers stop at teardown."""
    import uvicorn

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(**settings: Any) -> str:
        app = app_factory(**settings)
        service = app.state.service
        service.create_collection("films")
        service.add_documents("films", documents())
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def vae_dir(encoder: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.vae.helpers import train_tiny

    out = tmp_path_factory.mktemp("explore-vae")
    train_tiny(out, encoder, tmp_path_factory.mktemp("explore-vae-cache"), epochs=2)
    return out


def _wait(page: Any, expression: str, *, timeout: int) -> None:
    """Poll ``expression`` until it is true. Playwright's own wait_for_function builds its predicate
    with eval, which the page's Content-Security-Policy (rightly) forbids; evaluate is not blocked."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} ms waiting for {expression}")
        page.wait_for_timeout(100)


def _open(browser: Any, url: str) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 960})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # the page's own Content-Security-Policy must never block a part of it
    page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto(url + "/explore")
    _wait(page, "document.querySelectorAll('#map circle.pt').length === 12", timeout=30_000)
    return page, errors


def _hover_and_click(page: Any, doc_id: str) -> None:
    point = page.locator(f'#map circle.pt[data-id="{doc_id}"]')
    point.hover()
    tooltip = page.locator("#tooltip")
    tooltip.wait_for(state="visible")
    assert doc_id in tooltip.inner_text()
    point.click()


def test_hover_click_neighbours_and_the_error_without_a_latent_model(browser, serve):
    page, errors = _open(browser, serve())
    assert "12 documents" in page.locator("#status").inner_text()
    assert page.locator("#collection").input_value() == "films"

    # hover: the tooltip shows the document's text
    _hover_and_click(page, "neg0")
    assert NEGATIVE[0] in page.locator("#tooltip .tip-text").inner_text()

    # click: its neighbours are listed (all 11 others, best first), nearest first a film review
    _wait(page, "document.querySelectorAll('#neighbors li').length === 10", timeout=15_000)
    items = page.locator("#neighbors li").all_inner_texts()
    assert not any(NEGATIVE[0] in t for t in items)
    assert any(t in items[0] for t in NEGATIVE[1:] + POSITIVE), items[0]
    assert page.locator("#map circle.pt.nb").count() == 10

    # wheel zooms about the mouse (points move apart), a double-click on the background resets
    def spread() -> float:
        return float(page.evaluate("""() => { const c = [...document.querySelectorAll('#map circle.pt')];
            const xs = c.map((e) => +e.getAttribute('cx')); return Math.max(...xs) - Math.min(...xs); }"""))

    before = spread()
    box = page.locator("#map").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -300)
    page.wait_for_timeout(200)
    assert spread() > 1.2 * before
    page.mouse.dblclick(box["x"] + 3, box["y"] + 3)
    assert spread() == pytest.approx(before, abs=1)

    # a second pick, then decode: no latent model here, so the API's message is shown plainly
    _hover_and_click(page, "fin1")
    assert page.locator("#map circle.pt.sel").count() == 2
    page.locator("#decode").click()
    _wait(page, "document.getElementById('path-error').textContent.length > 0", timeout=15_000)
    message = page.locator("#path-error").inner_text()
    assert "404" in message and "TEXTLATENT_VAE_MODEL" in message
    assert page.locator("#path li").count() == 0
    assert errors == []


def test_sentiment_colours_and_a_decoded_path_screenshot(browser, serve, vae_dir):
    page, errors = _open(browser, serve(vae_model=vae_dir))

    page.select_option("#color", "sentiment")
    _wait(page, "document.getElementById('status').textContent.includes('sentiment by')",
                           timeout=30_000)
    assert page.locator("#legend").inner_text().split() == ["negative", "unsure", "positive"]
    fill = {i: page.locator(f'#map circle.pt[data-id="{i}"]').get_attribute("fill") for i in ("pos0", "neg0")}
    assert fill["pos0"].startswith("hsl(212") and fill["neg0"].startswith("hsl(4,"), fill

    _hover_and_click(page, "pos1")
    _hover_and_click(page, "fin2")
    assert POSITIVE[1] in page.locator("#pick-a").inner_text()
    assert NEUTRAL[2] in page.locator("#pick-b").inner_text()
    page.fill("#steps", "4")
    page.locator("#decode").click()
    _wait(page, "document.querySelectorAll('#path li').length === 4", timeout=60_000)
    path = page.locator("#path li").all_inner_texts()
    assert all(t.strip() for t in path) and page.locator("#path-error").inner_text() == ""
    assert page.locator("#map line.path").count() == 1

    page.locator('#map circle.pt[data-id="neg2"]').hover()  # a tooltip in the picture
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explore.png"), full_page=True)
    assert (ARTIFACTS / "explore.png").stat().st_size > 10_000
    assert errors == []


def test_a_key_typed_after_a_401_loads_the_map_and_is_kept_for_this_tab_only(browser, serve):
    """With keys set, the first listing is a 401; typing the key fetches the collections again (it
    did nothing until a reload), and the key goes to sessionStorage, not localStorage."""
    page = browser.new_page(viewport={"width": 1280, "height": 960})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(serve(api_keys="k-123") + "/explore")
    _wait(page, "document.getElementById('status').textContent.includes('401')", timeout=30_000)
    page.fill("#apikey", "k-123")
    page.locator("#apikey").dispatch_event("change")
    _wait(page, "document.querySelectorAll('#map circle.pt').length === 12", timeout=30_000)
    assert page.evaluate("localStorage.getItem('textlatent.apikey')") is None
    assert page.evaluate("sessionStorage.getItem('textlatent.apikey')") == "k-123"
    assert errors == []
