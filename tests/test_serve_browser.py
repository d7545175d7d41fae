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


def _char_buttons(browser, count, timeout=30.0, changed_from=None):
    """The characters' button labels once `count` are shown (and differ from `changed_from`)."""
    def ready(d):
        got = [b.text for b in d.find_elements(By.CSS_SELECTOR, "#chars button")]
        return got if len(got) == count and got != changed_from else False
    return WebDriverWait(browser, timeout).until(ready)


def _save_correction(browser, index: int, char: str) -> None:
    """What clicking character `index` and answering `char` saves, sent by the page's own
    state (pixels and box) without the dialog: an earlier correction of the same writing."""
    browser.execute_async_script("""
        const [index, char, done] = arguments, c = reading.chars[index];
        fetch("/correct", { method: "POST", headers: {"content-type": "application/json"},
                            body: JSON.stringify({ pixels, box: c.box, char }) })
          .then(r => done(r.status));""", index, char)


def test_word_page_reads_takes_a_correction_and_adapts(browser, trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(os.environ.get("CHARJAX_SCREENSHOT_WORKDIR") or trained_run[0], run,
                    ignore=shutil.ignore_patterns("tb", "*.lock", "corrections*"))
    rec = charjax.Recognizer.load(run)
    with _serving(rec) as address:
        browser.get(address + "read")
        _draw(browser, browser.find_element(By.ID, "pad"), _word_strokes(WORD))
        before = _char_buttons(browser, len(WORD.replace(" ", "")))
        text = browser.find_element(By.ID, "text").text
        assert len(text.replace(" ", "")) == 6 and text == browser.execute_script(
            "return reading.text")
        if os.environ.get("CHARJAX_READ_SCREENSHOT"):
            browser.save_screenshot(os.environ["CHARJAX_READ_SCREENSHOT"])
        want = "e" if not before[1].startswith("e") else "u"  # "a" read as something else
        browser.find_elements(By.CSS_SELECTOR, "#chars button")[1].click()
        prompt = WebDriverWait(browser, 10).until(lambda d: d.switch_to.alert)
        prompt.send_keys(want)
        prompt.accept()
        WebDriverWait(browser, 10).until(
            lambda d: d.find_element(By.ID, "count").text == "1 corrections saved")
        assert browser.find_element(By.ID, "text").text[1] == want  # shown corrected at once
        for _ in range(4):  # earlier corrections of the same writing
            _save_correction(browser, 1, want)
            _save_correction(browser, 0, "H")
        _save_correction(browser, 0, "H")
        assert len(list((run / "corrections").glob("*.png"))) == 10
        browser.find_element(By.ID, "adapt").click()
        WebDriverWait(browser, 240).until(
            lambda d: "adapted on 10 corrections" in d.find_element(By.ID, "status").text)
        after = _char_buttons(browser, 6, changed_from=before)
        assert after[1].startswith(want), (before, after)  # the adapted weights read it so
        assert (tmp_path / "run-me" / "metrics.json").is_file()
