"""The page in a real browser: Debian's Chromium, headless, driven by Selenium through chromedriver.

Upload a photo and a painting, submit, watch the preview change and the result appear, download it (with its
record); see the event stream of a second job come back after a drop, cancel that job; reuse the first one's
settings, read an error, and fit a phone-sized screen.
A screenshot goes to ``$STYLEGRAM_WEB_SCREENSHOT`` when set (the README's picture; with
``STYLEGRAM_WEB_SHOT_SIZE=256`` for a larger result), else to the test's temporary folder.

Where chromedriver is missing the test is skipped, except in CI (``CI`` set), where it must run.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from stylegram.core.images import read_metadata, resize_longest

pytest.importorskip("selenium")
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--window-size=1280,1100")


# Wraps fetch so that the first event stream breaks after two chunks, as a dropped connection would, and
# records the Last-Event-ID each stream request carries.
DROP_FIRST_STREAM = """
window.asked = [];
const original = window.fetch;
window.fetch = async (url, init) => {
  const response = await original(url, init);
  if (!String(url).includes("/events")) return response;
  window.asked.push(new Headers((init || {}).headers).get("Last-Event-ID"));
  if (window.asked.length > 1) return response;
  const reader = response.body.getReader();
  let chunks = 0;
  const cut = new ReadableStream({ async pull(controller) {
    const { value, done } = await reader.read();
    if (done || chunks++ >= 2) { reader.cancel(); controller.error(new TypeError("network drop")); return; }
    controller.enqueue(value);
  } });
  return new Response(cut, { status: response.status, headers: response.headers });
};
"""


@pytest.fixture
def server(tmp_path: Path, weights_cache: str, one_thread: None) -> Iterator[str]:
    """The real app on uvicorn, on a free loopback port, in a thread."""
    import uvicorn

    from stylegram.web.app import create_app
    from stylegram.web.config import ServerOptions

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ServerOptions(port=port, data_dir=str(tmp_path / "data"), devices=("cpu",)))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(15)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    if CHROMIUM is None or DRIVER is None:
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver must be installed in CI (apt-get install chromium chromium-driver)")
        pytest.skip("chromium and chromedriver are not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def _pictures(folder: Path) -> tuple[Path, Path]:
    from stylegram.core.samples import demo_content, generated_painting

    photo, painting = folder / "astronaut.png", folder / "painting.jpg"
    resize_longest(demo_content(), 160).save(photo)
    generated_painting(160, seed=7).save(painting, quality=92)
    return photo, painting


def _text(d: Any, element_id: str) -> str:
    return str(d.find_element(By.ID, element_id).text)


def _set(d: Any, element_id: str, value: str) -> None:
    field = d.find_element(By.ID, element_id)
    field.clear()
    field.send_keys(value)


def test_upload_watch_download_cancel_reuse_in_a_real_browser(server: str, browser: Any, tmp_path: Path) -> None:
    size = os.environ.get("STYLEGRAM_WEB_SHOT_SIZE", "64")
    d, wait = browser, WebDriverWait(browser, 90 if size == "64" else 900, poll_frequency=0.1)
    photo, painting = _pictures(tmp_path)
    d.get(server)
    wait.until(lambda d: d.find_elements(By.ID, "opt-iterations"))
    d.find_element(By.ID, "content-file").send_keys(str(photo))
    d.find_element(By.ID, "style-files").send_keys(str(painting))
    assert len(d.find_elements(By.CSS_SELECTOR, "#content-thumbs img")) == 1
    assert len(d.find_elements(By.CSS_SELECTOR, "#style-thumbs img")) == 1
    presets = d.find_elements(By.CSS_SELECTOR, "#preset-choices button")
    light = [b for b in presets if b.text == "light"]
    if light:  # the library's presets, when it has them: a button sets their fields
        light[0].click()
        assert light[0].get_attribute("aria-pressed") == "true"
    d.find_element(By.CSS_SELECTOR, "#advanced summary").click()
    _set(d, "opt-size", size)
    _set(d, "opt-iterations", "12" if size == "64" else "60")
    d.execute_script("window.seen = []; const p = document.getElementById('preview');"
                     "new MutationObserver(() => window.seen.push(p.src)).observe(p, {attributeFilter: ['src']});")
    d.find_element(By.ID, "submit").click()

    wait.until(lambda d: _text(d, "state") == "Done")
    seen = d.execute_script("return window.seen")
    assert len(set(seen)) >= 2 and all(s.startswith("blob:") for s in seen)  # previews, then the result
    assert "12 / 12" in _text(d, "numbers") or size != "64"
    download = d.find_element(By.ID, "download")
    assert download.is_displayed()
    shot = Path(os.environ.get("STYLEGRAM_WEB_SCREENSHOT") or tmp_path / "page.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    d.find_element(By.CSS_SELECTOR, "#advanced summary").click()
    d.execute_script("window.scrollTo(0, 0)")
    assert d.save_screenshot(str(shot))
    download.click()
    wait.until(lambda d: [p for p in d.downloads.iterdir() if p.suffix == ".png"])
    (saved,) = [p for p in d.downloads.iterdir() if p.suffix == ".png"]
    record = read_metadata(saved)
    assert record is not None and record["method"] == "gatys" and record["options"]["size"] == int(size)
    assert record["inputs"]["content"]["file"] == "astronaut.png"
    if light:
        info = d.execute_script("return fetch('/api/info').then((r) => r.json())")
        assert record["options"]["style_strength"] == info["kinds"][0]["presets"]["light"]["style_strength"]
    assert max(Image.open(saved).size) == int(size)

    d.find_element(By.CSS_SELECTOR, "#advanced summary").click()
    _set(d, "opt-iterations", "1000")  # a second job, its stream dropped once, then cancelled while it runs
    d.execute_script(DROP_FIRST_STREAM)
    d.find_element(By.ID, "submit").click()
    wait.until(lambda d: _text(d, "state").startswith("Painting") and len(d.execute_script("return window.asked")) > 1)
    first, again = d.execute_script("return window.asked")[:2]
    assert first is None and int(again) >= 1  # it came back asking for what it missed
    progress = d.find_element(By.ID, "progress").get_attribute("value")
    wait.until(lambda d: d.find_element(By.ID, "progress").get_attribute("value") != progress)  # and goes on
    d.find_element(By.ID, "cancel").click()
    wait.until(lambda d: _text(d, "state").startswith("Cancelled"))
    items = d.find_elements(By.CSS_SELECTOR, "#gallery li")
    assert len(items) == 2 and "cancelled" in items[0].text and "done" in items[1].text
    items[1].find_element(By.CSS_SELECTOR, "button.reuse").click()
    assert d.find_element(By.ID, "opt-iterations").get_attribute("value") == ("12" if size == "64" else "60")

    _set(d, "opt-size", "5000")  # beyond the server's cap: its one-line message, shown as it is
    d.find_element(By.ID, "submit").click()
    wait.until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert _text(d, "error") == "size must be at most 1024 on this server, got 5000"

    d.execute_script("document.getElementById('advanced').open = false; window.scrollTo(0, 0)")
    d.set_window_size(390, 844)  # a phone
    assert d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    d.save_screenshot(str(shot.with_name(shot.stem + "-phone.png")))
    assert Image.open(shot).size[0] >= 1000
