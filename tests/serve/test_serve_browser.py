"""End to end in a real headless browser: `vaekit serve` in a subprocess, Debian's chromium
driven by Playwright. The page loads without console errors, a slider and the map change the
decoded image, an upload shows a reconstruction; a screenshot is saved.

Environment: VAEKIT_CHROMIUM (default /usr/bin/chromium); VAEKIT_REQUIRE_BROWSER=1 (set by
.ci/run) turns a missing browser into a failure instead of a skip; VAEKIT_EXPLORER_RUN serves
that run folder instead of the tiny digits model; VAEKIT_SCREENSHOT is where the screenshot goes.
"""

import contextlib
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vaekit

CHROMIUM = os.environ.get("VAEKIT_CHROMIUM", "/usr/bin/chromium")
# the flags that work on a bare CI machine; Playwright adds --headless and a new empty profile itself
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.slow


def _unavailable(reason: str):
    if os.environ.get("VAEKIT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (VAEKIT_REQUIRE_BROWSER=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the browser test needs the playwright package (pip install -e '.[test]')")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _unavailable(f"the browser test needs chromium at {CHROMIUM} (apt-get install -y chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@contextlib.contextmanager
def serving(run):
    """`vaekit serve RUN --port P` in a subprocess -> the address it printed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaekit", "serve", str(run), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
        url, seen, deadline = None, [], time.monotonic() + 120
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            seen.append(line)
            if f"http://127.0.0.1:{port}/" in line:
                url = f"http://127.0.0.1:{port}/"
        if url is None:
            pytest.fail("vaekit serve did not print its address:\n" + "".join(seen))
        for _ in range(200):  # the address is printed just before uvicorn binds
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server(request):
    run = os.environ.get("VAEKIT_EXPLORER_RUN") or str(request.getfixturevalue("digits_run"))
    with serving(run) as url:
        yield {"url": url, "run": run}


def _open(browser, url):
    """A new page at url, ready; -> (page, console errors, requests to other hosts)."""
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    errors, foreign = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: foreign.append(r.url) if not r.url.startswith((url, "data:")) else None)
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    page.wait_for_function("document.getElementById('decoded').getAttribute('src')", timeout=20_000)
    page.wait_for_function("document.querySelectorAll('#samples img').length === 24", timeout=20_000)
    return page, errors, foreign


def _src(page, selector):
    return page.eval_on_selector(selector, "el => el.getAttribute('src') || ''")


def _wait_changed(page, selector, before, timeout=20_000):
    page.wait_for_function(
        "([sel, before]) => { const s = document.querySelector(sel).getAttribute('src'); return s && s !== before; }",
        arg=[selector, before],
        timeout=timeout,
    )


def _upload_file(tmp_path, run) -> Path:
    """A test image saved as a 4x larger PNG, as a user's file would be."""
    x = vaekit.load_run(run).data().test.x[0]  # (C, H, W)
    arr = (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    im = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)
    path = tmp_path / "upload.png"
    im.resize((im.width * 4, im.height * 4), Image.Resampling.NEAREST).save(path)
    return path


def test_the_page_in_a_real_browser(browser, server, tmp_path):
    url = server["url"]
    page, errors, foreign = _open(browser, url)
    page.wait_for_function(
        "document.querySelectorAll('#interp-lerp img').length === 9 && "
        "document.querySelectorAll('#interp-slerp img').length === 9",
        timeout=20_000,
    )
    n_sliders = page.locator("#sliders input[type=range]").count()
    assert n_sliders == page.evaluate("fetch('api/info').then(r => r.json()).then(i => i.latent_dim)")

    # moving the most informative dimension's slider changes the decoded image
    before = _src(page, "#decoded")
    slider = page.locator("#sliders input[type=range]").first
    slider.focus()
    slider.press("End")
    _wait_changed(page, "#decoded", before)
    assert page.inner_text("#decoded-caption") == "from the sliders"

    # "draw z from the prior" takes a code drawn by the server from the run's prior
    before = _src(page, "#decoded")
    page.click("#btn-prior")
    _wait_changed(page, "#decoded", before)
    assert page.inner_text("#decoded-caption") == "a draw from N(0, I)"

    # clicking the map decodes that point, and dragging keeps decoding
    box = page.locator("#map").bounding_box()
    before = _src(page, "#decoded")
    page.mouse.click(box["x"] + 0.25 * box["width"], box["y"] + 0.3 * box["height"])
    _wait_changed(page, "#decoded", before)
    assert page.inner_text("#decoded-caption").startswith("map point")
    before = _src(page, "#decoded")
    page.mouse.move(box["x"] + 0.7 * box["width"], box["y"] + 0.6 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.8 * box["width"], box["y"] + 0.75 * box["height"], steps=8)
    page.mouse.up()
    _wait_changed(page, "#decoded", before)

    # an upload shows its reconstruction and its score
    page.set_input_files("#upload", str(_upload_file(tmp_path, server["run"])))
    page.wait_for_function("document.getElementById('upload-recon').getAttribute('src')", timeout=20_000)
    assert page.locator("#analysis").is_visible()
    assert float(page.inner_text("#score-value")) > 0
    assert "test images" in page.inner_text("#score-pct")

    # a bad request shows the server's message instead of failing silently
    page.fill("#interp-a", "999999")
    page.dispatch_event("#interp-a", "change")
    page.wait_for_selector("#toast:not([hidden])", timeout=10_000)
    assert "out of range" in page.inner_text("#toast")
    page.fill("#interp-a", "0")
    page.dispatch_event("#interp-a", "change")
    page.evaluate("document.getElementById('toast').hidden = true")
    # the 422 of that bad request is logged by the browser as a failed resource load; nothing else may be
    errors = [e for e in errors if "422" not in e]

    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.wait_for_timeout(500)
    shot = Path(os.environ.get("VAEKIT_SCREENSHOT") or tmp_path / "explorer.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    with Image.open(shot) as im:
        assert im.width >= 1440 and im.height >= 1000
    assert errors == [], errors
    assert foreign == [], f"the page asked for something from another host: {foreign}"
    page.close()


@pytest.mark.parametrize("run_fixture", ["cvae_run", "vector_run"])
def test_the_page_for_other_kinds_of_model(browser, request, run_fixture):
    """A conditional model with a 2-d latent space; feature vectors with a 1-d one and no labels."""
    with serving(request.getfixturevalue(run_fixture)) as url:
        page, errors, foreign = _open(browser, url)
        before = page.eval_on_selector("#decoded", "el => el.getAttribute('src')")
        box = page.locator("#map").bounding_box()
        page.mouse.click(box["x"] + 0.6 * box["width"], box["y"] + 0.4 * box["height"])
        _wait_changed(page, "#decoded", before)
        page.click("#btn-upload-test")
        page.wait_for_function("document.getElementById('upload-recon').getAttribute('src')", timeout=20_000)
        if run_fixture == "cvae_run":
            assert page.locator("#label-select option").count() == 10
            before = page.eval_on_selector("#decoded", "el => el.getAttribute('src')")
            page.select_option("#label-select", "7")
            _wait_changed(page, "#decoded", before)
        page.wait_for_timeout(300)
        assert errors == [] and foreign == []
        page.close()
