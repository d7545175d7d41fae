"""`charjax serve`'s JSON API, in process: answers, and a 4xx JSON error for every bad request,
hostile ones included (tests/hostile_bodies.py), within bounded memory."""

import io
import logging
import threading
import time
import warnings

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("httpx2", reason="starlette's TestClient needs httpx2 (pip install -e .[test])")
import hostile_bodies as hostile  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

import charjax  # noqa: E402
from charjax import serve  # noqa: E402
from charjax.serve import app as app_module  # noqa: E402


@pytest.fixture(scope="module")
def rec(trained_run):
    return charjax.Recognizer.load(trained_run[0])


@pytest.fixture(scope="module")
def client(rec):
    return TestClient(serve.create_app(rec, max_body_bytes=200_000))


def _png(array: np.ndarray, mode: str = "L") -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def glyph():
    yy, xx = np.mgrid[:120, :120]
    ring = np.abs(np.hypot(yy - 60, xx - 60) - 40) < 6  # an "O" in black on white
    return np.where(ring, 0, 255).astype(np.uint8)


def test_page_health_and_model(client, rec, trained_run):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text and "/predict" in page.text
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/model").json()
    assert info["classes"] == "".join(rec.classes) and info["framing"] == rec.framing
    assert info["model"] == "tutorial"
    assert info["test_accuracy"] == pytest.approx(trained_run[1]["test_accuracy"])


def test_an_ensemble_is_served_with_its_scores(trained_run, rec, glyph):
    voted = charjax.Recognizer.load([trained_run[0]] * 2, vote=True)
    assert voted.workdir is None  # corrections belong to one run
    answer = TestClient(serve.create_app(voted)).post(
        "/predict", content=_png(glyph), headers={"content-type": "image/png"}).json()
    char, p = rec.predict(glyph, top_k=1)[0][0]
    assert answer["top"][0]["char"] == char  # both members vote for it: all the votes
    assert answer["top"][0]["p"] == pytest.approx((2 + 1e-6 * p) / 2, abs=2e-7)


def test_the_three_request_forms_give_the_api_answer(client, rec, glyph):
    want = rec.predict(glyph, top_k=5)[0]
    answers = [
        client.post("/predict", files={"file": ("o.png", _png(glyph), "image/png")}),
        client.post("/predict", content=_png(glyph), headers={"content-type": "image/png"}),
        client.post("/predict", json={"pixels": glyph.tolist()}),
    ]
    for r in answers:
        assert r.status_code == 200, r.text
        body = r.json()
        assert [(t["char"], pytest.approx(t["p"], abs=1e-6)) for t in body["top"]] == want
        assert body["input_png"].startswith("data:image/png;base64,") and body["warning"] is None
    three = client.post("/predict?top_k=3", json={"pixels": glyph.tolist()}).json()["top"]
    assert len(three) == 3
    assert len(client.post("/predict", json={"pixels": glyph.tolist(), "top_k": 2}
                           ).json()["top"]) == 2


def test_blank_drawing_is_answered_with_a_warning(client):
    r = client.post("/predict", json={"pixels": [[255] * 20] * 20})
    assert r.status_code == 200 and "blank" in r.json()["warning"]


@pytest.mark.parametrize("request_kw,status,fragment", [
    (dict(content=b"hello", headers={"content-type": "text/plain"}), 415, "content type"),
    (dict(content=b"hello"), 415, "content type"),
    (dict(content=b"not a png", headers={"content-type": "image/png"}), 400, "not a readable"),
    (dict(content=b"", headers={"content-type": "image/png"}), 400, "empty"),
    (dict(content=b"x" * 200_001, headers={"content-type": "image/png"}), 413, "limit"),
    (dict(files={"other": ("a.png", b"123", "image/png")}), 400, "'file'"),
    (dict(files={"file": ("a.png", b"", "image/png")}), 400, "empty"),
    (dict(files={"file": ("a.txt", b"plain text", "text/plain")}), 400, "not a readable"),
    (dict(content=b"--zz\r\nbroken", headers={"content-type": "multipart/form-data; boundary=zz"}),
     400, "file"),
    (dict(content=b"{not json", headers={"content-type": "application/json"}), 400, "JSON"),
    (dict(json=[1, 2]), 400, '"pixels"'),
    (dict(json={"pixel": [[1]]}), 400, '"pixels"'),
    (dict(json={"pixels": [[1, 2], [3]]}), 400, "rows"),
    (dict(json={"pixels": [1, 2, 3]}), 400, "2-D"),
    (dict(json={"pixels": [[]]}), 400, "empty"),
    (dict(json={"pixels": [["a"]]}), 400, "numbers"),
    (dict(json={"pixels": [[300]]}), 400, "0..255"),
    (dict(json={"pixels": [[-1]]}), 400, "0..255"),
    (dict(json={"pixels": [[0] * 2049]}), 413, "2048"),
    (dict(json={"pixels": [[1]], "top_k": 0}), 400, "top_k"),
    (dict(json={"pixels": [[1]], "top_k": "many"}), 400, "top_k"),
])
def test_every_bad_request_is_a_4xx_json_error(client, request_kw, status, fragment):
    r = client.post("/predict", **request_kw)
    assert r.status_code == status, r.text
    assert fragment in r.json()["error"]


def test_bad_query_unknown_route_and_wrong_method(client):
    r = client.post("/predict?top_k=99", json={"pixels": [[1]]})
    assert r.status_code == 400 and "top_k" in r.json()["error"]
    r = client.get("/nope")
    assert r.status_code == 404 and "/nope" in r.json()["error"]
    r = client.get("/predict")
    assert r.status_code == 405 and "GET" in r.json()["error"]
    assert client.get("/health").status_code == 200  # still serving


def test_declared_length_over_the_limit_is_refused_unread(client):
    r = client.post("/predict", content=b"x" * 10,
                    headers={"content-type": "image/png", "content-length": "999999999"})
    assert r.status_code == 413 and "999,999,999" in r.json()["error"]


def test_concurrent_requests_get_their_own_answers(client, rec, glyph):
    images = [glyph, np.rot90(glyph).copy(), 255 - np.eye(60, dtype=np.uint8) * 255]
    want = [rec.predict(x, top_k=5)[0][0][0] for x in images]
    got = [None] * 24
    errors = []

    def ask(i):
        try:
            r = client.post("/predict", json={"pixels": images[i % 3].tolist()})
            got[i] = r.json()["top"][0]["char"]
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert got == [want[i % 3] for i in range(24)]


def test_serve_command_listens_on_localhost_and_refuses_a_bad_port(trained_run):
    import json as json_lib
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    from conftest import ROOT

    bad = subprocess.run([sys.executable, "-m", "charjax", "serve", "--workdir",
                          str(trained_run[0]), "--port", "70000"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--port" in bad.stderr and "Traceback" not in bad.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "charjax", "serve", "--workdir",
                               str(trained_run[0]), "--port", str(port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/model", timeout=2) as r:
                    info = json_lib.load(r)
                break
            except OSError:
                assert time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.3)
        assert info["model"] == "tutorial"
    finally:
        server.terminate()
        server.wait(30)
    err = server.stderr.read()
    assert server.returncode == 0, err  # stopped as asked: not an error
    assert err.strip().splitlines()[-1] == "charjax serve: stopped (SIGTERM)", err
    assert "serving" in err and "resume" not in err and "checkpoint" not in err, err


def test_no_hostile_request_is_a_500_and_the_server_answers_after(rec, glyph, caplog):
    """Every body of the corpus gets the status it deserves, as JSON naming the problem; no
    error is logged (a 500 would be); and a good request afterwards gets the API's answer."""
    client = TestClient(serve.create_app(rec))  # the default limits, as served
    corpus = hostile.corpus()
    assert len(corpus) >= 40 and len({c.id for c in corpus}) == len(corpus)
    wrong = []
    with caplog.at_level(logging.WARNING, logger="charjax"), warnings.catch_warnings():
        # pytest resets charjax.imageio's filter; Pillow warns of what the server refuses
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for case in corpus:
            r = client.post("/predict" + case.query, content=case.body, headers=case.headers)
            body = r.json()
            if r.status_code not in case.ok or (r.status_code >= 400) != ("error" in body):
                wrong.append((case.id, r.status_code, r.text[:200]))
            elif r.status_code >= 400:
                assert body["error"] and "\n" not in body["error"], (case.id, body)
    assert not wrong, wrong
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    r = client.post("/predict", files={"file": ("o.png", _png(glyph), "image/png")})
    assert r.status_code == 200
    want = rec.predict(glyph, top_k=5)[0]
    assert [(t["char"], pytest.approx(t["p"], abs=1e-6)) for t in r.json()["top"]] == want


def test_a_bug_is_one_500_logged_once(rec, caplog, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(rec, "recognize", broken)
    client = TestClient(serve.create_app(rec))  # raises if the error reached the server
    with caplog.at_level(logging.ERROR):
        r = client.post("/predict", json={"pixels": [[0, 255], [255, 0]]})
    assert r.status_code == 500 and "RuntimeError" in r.json()["error"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "/predict" in errors[0].getMessage()


def test_images_over_the_pixel_budget_are_refused_from_the_header(rec, monkeypatch):
    limits = serve.Limits(decode_pixels=2_500_000)
    client = TestClient(serve.create_app(rec, limits=limits))
    png = hostile.png_bomb(3000, 3000)  # 9 MP
    decoded = []
    real_load = app_module.imageio.Image.Image.load
    monkeypatch.setattr(app_module.imageio.Image.Image, "load",
                        lambda self: decoded.append(self.size) or real_load(self))
    r = client.post("/predict", content=png, headers={"content-type": "image/png"})
    assert r.status_code == 413 and "9,000,000 pixels" in r.json()["error"]
    assert "2,500,000" in r.json()["error"] and not decoded  # refused before any decoding
    out = io.BytesIO()  # a JPEG of the same size decodes at half scale: 2.25 MP fits
    Image.new("L", (3000, 3000), 255).save(out, format="JPEG")
    decoded.clear()
    r = client.post("/predict", content=out.getvalue(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 200 and decoded[0] == (1500, 1500), decoded
    assert max(w * h for w, h in decoded) == 1500 * 1500  # then reduced for framing
    assert "blank" in r.json()["warning"]


def test_decoding_runs_a_few_requests_at_a_time(rec, glyph, monkeypatch):
    client = TestClient(serve.create_app(rec, limits=serve.Limits(decode_slots=2)))
    lock, active, peak = threading.Lock(), [0], [0]
    real = app_module.imageio.open_picture

    def slow(*args, **kwargs):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.1)
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(app_module.imageio, "open_picture", slow)
    statuses = []
    body = _png(glyph)

    def ask():
        r = client.post("/predict", content=body, headers={"content-type": "image/png"})
        statuses.append(r.status_code)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 8
    assert peak[0] == 2  # concurrent, and never more than the slots


def test_pixels_follow_the_api_rule_integers_or_floats_0_1(client, rec, glyph):
    ints = client.post("/predict", json={"pixels": glyph.tolist()}).json()["top"]
    floats = client.post("/predict", json={"pixels": (glyph / 255).tolist()}).json()["top"]
    assert [t["char"] for t in ints] == [t["char"] for t in floats]
    r = client.post("/predict", json={"pixels": glyph[:40, :40].astype(float).tolist()})
    assert r.status_code == 400 and "float pixels must be in 0..1" in r.json()["error"]
    noise = np.random.default_rng(0).integers(0, 256, (48, 48))
    r = client.post("/predict", json={"pixels": noise.tolist()})
    assert r.status_code == 200 and "noise" in r.json()["warning"]


def test_the_page_has_an_icon_no_broken_image_and_clears_a_failed_answer(client):
    page = client.get("/").text
    assert 'rel="icon" href="data:image/svg+xml' in page  # no request for /favicon.ico
    assert '<img id="seen" alt="model input">' in page  # no src until an answer comes
    assert "#seen:not([src]) { visibility: hidden; }" in page
    catch = page[page.index("} catch (err) {"):page.index("} finally {")]
    assert "clearAnswer();" in catch and "status" in catch  # a failure leaves no old bars
    assert "overflow-wrap: anywhere" in page[page.index("#status"):]
