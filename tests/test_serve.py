"""`charjax serve`'s JSON API, in process: answers, and a 4xx JSON error for every bad request."""

import io
import threading

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("httpx2", reason="starlette's TestClient needs httpx2 (pip install -e .[test])")
from starlette.testclient import TestClient  # noqa: E402

import charjax  # noqa: E402
from charjax import serve  # noqa: E402


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
    (dict(json={"pixels": [[]]}), 400, "non-empty"),
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
