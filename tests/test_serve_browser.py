"""The pages in a real browser (headless Chromium). The drawing page: strokes drawn with the
mouse and an uploaded file both get the top-5 answer the API gives for the same image. The
word page: a written word is read, a character corrected by clicking it, and after `adapt`
the same writing reads as corrected.

Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them) and selenium; skipped
with the reason otherwise. CHARJAX_SCREENSHOT=PATH saves the drawing page after drawing,
CHARJAX_READ_SCREENSHOT=PATH the word page after reading, and CHARJAX_SCREENSHOT_WORKDIR=RUN
serves that run instead of the tiny test run (README figures).
"""

import base64
import contextlib
import io
import os
import shutil
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip("no chromium/chromedriver: apt-get install chromium chromium-driver",
                allow_module_level=True)

import uvicorn  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

import charjax  # noqa: E402
from charjax import serve  # noqa: E402
from charjax.datasets import drawn  # noqa: E402


@pytest.fixture(scope="module")
def rec(trained_run):
    return charjax.Recognizer.load(os.environ.get("CHARJAX_SCREENSHOT_WORKDIR") or trained_run[0])


@contextlib.contextmanager
def _serving(rec):
    """The app around `rec` on a free local port, in a thread; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(serve.create_app(rec), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def url(rec):
    with _serving(rec) as address:
        yield address


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1100,600", "--force-device-scale-factor=1"):
        options.add_argument(arg)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    yield driver
    driver.quit()


def _bars(browser, timeout=20.0, previous=None):
    """The (char, percent) rows once they appear (and differ from `previous`)."""
    def ready(d):
        rows = d.find_elements(By.CSS_SELECTOR, "#bars li")
        got = [(r.get_attribute("data-char"), r.find_element(By.CLASS_NAME, "p").text)
               for r in rows]
        return got if len(got) == 5 and got != previous else False
    return WebDriverWait(browser, timeout).until(ready)


def _settled(browser):
    """Bars after the page's last request has come back."""
    time.sleep(0.3)
    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script("return !busy && !pending && shown === sent"))
    return _bars(browser)


def _as_answer(top):
    return [(c, f"{100 * p:.1f}%") for c, p in top]


def test_drawing_strokes_shows_the_api_answer(browser, url, rec):
    browser.get(url)
    WebDriverWait(browser, 20).until(
        lambda d: "framing" in d.find_element(By.ID, "model-info").text)
    canvas = browser.find_element(By.ID, "pad")
    size = canvas.size["width"]
    paths = drawn.canvas_strokes("A", size, 0.7)
    if rec.framing == "line":  # write on the guides the page draws
        guides = {k: (v + 0.5) * size / 48 for k, v in rec.info()["guides"].items()}
        paths = drawn.guided_strokes("A", guides["cap"], guides["baseline"], size / 2)
    for path in paths:
        chain = ActionChains(browser, duration=10)
        x, y = path[0] - size / 2
        chain.move_to_element_with_offset(canvas, int(x), int(y)).click_and_hold()
        for step in np.diff(np.round(path).astype(int), axis=0):
            if step.any():
                chain.move_by_offset(int(step[0]), int(step[1]))
        chain.release().perform()
    shown = _settled(browser)
    data_url = browser.execute_script("return pad.toDataURL('image/png')")
    drawing = Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))
    assert np.asarray(drawing.convert("L")).min() < 50, "the strokes reached the canvas"
    assert shown == _as_answer(rec.predict(drawing, top_k=5)[0])
    seen = browser.find_element(By.ID, "seen").get_attribute("src")
    assert seen.startswith("data:image/png;base64,")
    if os.environ.get("CHARJAX_SCREENSHOT"):
        browser.save_screenshot(os.environ["CHARJAX_SCREENSHOT"])
    browser.find_element(By.ID, "clear").click()
    assert not browser.find_elements(By.CSS_SELECTOR, "#bars li")


def test_uploading_a_file_shows_its_answer(browser, url, rec, tmp_path):
    browser.get(url)
    path = tmp_path / "upload.png"
    Image.fromarray(drawn.render("k", 200, 0.8, 10.0)).save(path)
    browser.find_element(By.ID, "file").send_keys(str(path))
    assert _settled(browser) == _as_answer(rec.predict(str(path), top_k=5)[0])


WORD = "Hand 42"
GUIDES = (60, 150)  # the word page's cap line and baseline (read.html: BASE - CAP, BASE)


def _word_strokes(word: str) -> list[np.ndarray]:
    """Pen paths of `word` on the word page's guides, characters 24 px apart, words 90."""
    paths, x = [], 60.0
    for char in word:
        if char == " ":
            x += 90
            continue
        glyph = drawn.guided_strokes(char, *GUIDES, 0.0)
        left, right = np.concatenate(glyph)[:, 0].min(), np.concatenate(glyph)[:, 0].max()
        paths += [p + [x - left, 0] for p in glyph]
        x += right - left + 24
    return paths


def _draw(browser, canvas, paths) -> None:
    """Each path as a pointer stroke (press, moves, release) on `canvas`."""
    width, height = canvas.size["width"], canvas.size["height"]
    for path in paths:
        chain = ActionChains(browser, duration=10)
        x, y = path[0] - [width / 2, height / 2]
        chain.move_to_element_with_offset(canvas, int(x), int(y)).click_and_hold()
        for step in np.diff(np.round(path).astype(int), axis=0):
            if step.any():
                chain.move_by_offset(int(step[0]), int(step[1]))
        chain.release().perform()


def _char_buttons(browser, count, timeout=30.0):
    """The characters' button labels (char, then its top 3) once `count` are shown."""
    def ready(d):
        got = [b.text for b in d.find_elements(By.CSS_SELECTOR, "#chars button")]
        return got if len(got) == count else False
    return WebDriverWait(browser, timeout).until(ready)


def _earlier_corrections(run, chars: str) -> None:
    """Corrections saved before (one synthetic writer's `chars`), as the page saves them."""
    from charjax import charset
    from charjax.datasets import folder, synthetic

    labels = np.array([charset.char_to_index(c) for c in chars])
    images = synthetic.render_styled(labels, np.random.default_rng(0), "fit",
                                     synthetic.writer_style(3),
                                     glyph=synthetic.writer_glyphs(3)[labels])
    (run / "corrections").mkdir()
    for i, (char, image) in enumerate(zip(chars, images, strict=True)):
        Image.fromarray(image).save(run / "corrections" / f"{folder.label_token(char)}_{i}.png")


def test_word_page_reads_takes_a_correction_and_adapts(browser, trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(os.environ.get("CHARJAX_SCREENSHOT_WORKDIR") or trained_run[0], run,
                    ignore=shutil.ignore_patterns("tb", "*.lock", "corrections*"))
    _earlier_corrections(run, "Hnd42Hnd42")
    rec = charjax.Recognizer.load(run)
    with _serving(rec) as address:
        browser.get(address + "read")
        _draw(browser, browser.find_element(By.ID, "pad"), _word_strokes(WORD))
        count = len(WORD.replace(" ", ""))
        before = _char_buttons(browser, count)
        text = browser.find_element(By.ID, "text").text
        assert len(text.replace(" ", "")) == count and text == browser.execute_script(
            "return reading.text")
        if os.environ.get("CHARJAX_READ_SCREENSHOT"):
            height = browser.execute_script("return document.documentElement.scrollHeight")
            browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": 1000, "height": height, "deviceScaleFactor": 1, "mobile": False})
            browser.save_screenshot(os.environ["CHARJAX_READ_SCREENSHOT"])
            browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        want = "e" if not before[1].startswith("e") else "u"  # "a" read as something else
        browser.find_elements(By.CSS_SELECTOR, "#chars button")[1].click()
        prompt = WebDriverWait(browser, 10).until(lambda d: d.switch_to.alert)
        prompt.send_keys(want)
        prompt.accept()
        WebDriverWait(browser, 10).until(
            lambda d: d.find_element(By.ID, "count").text == "11 corrections saved")
        assert browser.find_element(By.ID, "text").text.replace(" ", "")[1] == want
        browser.find_element(By.ID, "adapt").click()
        status = WebDriverWait(browser, 120).until(
            lambda d: (t := d.find_element(By.ID, "status").text) != "adapting to the "
            "corrections..." and t)
        assert status.startswith("adapted on 11 corrections"), status
        after = _char_buttons(browser, count)
        assert after[1].startswith(want), (before, after)  # the adapted weights read it so
        assert (tmp_path / "run-me" / "metrics.json").is_file()
