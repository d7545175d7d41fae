"""Reading words and lines (charjax/reading.py): segmentation, the line, the decision."""

import json

import numpy as np
import pytest
from PIL import Image

from charjax import charset, framing, reading
from charjax.datasets import words

C = charset.CLASSES


def _onehot(text: str, blur: dict[str, str] | None = None) -> np.ndarray:
    """Model probabilities for `text`: sure of each character, or split evenly over the
    look-alikes `blur` names for it (a case-blind model)."""
    chars = [c for c in text if c != " "]
    probs = np.full((len(chars), 62), 1e-4)
    for i, c in enumerate(chars):
        group = (blur or {}).get(c, c)
        for g in group:
            probs[i, C.index(g)] += 1.0 / len(group)
    return probs / probs.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def sample_lines():
    return words.lines(24, seed=11)


def test_segmentation_finds_every_character_and_splits_none(sample_lines):
    good = 0
    for line in sample_lines:
        ink, _ = framing.ink_image(line.image)
        boxes = np.array([s.box for s in reading.segment(ink)])
        if len(boxes) == len(line.boxes) and np.all(np.abs(boxes - line.boxes) <= 2):
            good += 1
    assert good >= len(sample_lines) - 1


def test_dotted_and_two_stroke_characters_stay_whole():
    ink = np.zeros((40, 60), np.float32)
    ink[18:30, 10:13] = 1.0  # the stem of an i
    ink[12:15, 10:13] = 1.0  # its dot
    ink[15:17, 30:45] = 1.0  # an = sign: two bars
    ink[22:24, 30:45] = 1.0
    boxes = [s.box for s in reading.segment(ink)]
    assert boxes == [(10, 12, 13, 30), (30, 15, 45, 24)]


def test_touching_characters_are_split_at_the_thin_join():
    ink = np.zeros((40, 100), np.float32)
    ink[10:32, 10:40] = 1.0  # two blocks, each as tall as the line,
    ink[10:32, 41:70] = 1.0
    ink[20:21, 40:41] = 1.0  # joined by a hair
    segments = reading.segment(ink)
    assert [s.box[0] for s in segments] == [10, 41]


@pytest.mark.parametrize("text", ["hello there", "HELLO", "2024", "Quiz 42"])
def test_line_estimate_matches_the_drawn_line(text):
    line = words.render_line(text, seed=2)
    case_blind = {c: c.lower() + c.upper() for c in "cCkKoOpPsSuUvVwWxXzZ"}
    est = reading.estimate_line(line.boxes.astype(float), _onehot(text, case_blind))
    assert abs(est.baseline - line.baseline) < 2.0
    assert abs(est.cap_height - line.cap_height) < 0.12 * line.cap_height


def _box(x: int, top_cap: float, bottom_cap: float, base: float = 60, cap: float = 30):
    return [x, base - top_cap * cap, x + 20, base + bottom_cap * cap]


def test_geometry_flips_a_case_pair_the_right_way():
    boxes = np.array([_box(0, 1.09, 0.09), _box(30, 0.76, 0.09), _box(60, 1.09, 0.09)])
    probs = _onehot("TOT")
    probs[1] = _onehot("O")[0] * 0.6 + _onehot("o")[0] * 0.4  # the model leans to O
    posterior, _, _ = reading.decide(probs, boxes, [[0, 1, 2]])
    assert C[posterior[1].argmax()] == "o"
    tall = boxes.copy()
    tall[1] = _box(30, 1.09, 0.09)
    probs[1] = _onehot("O")[0] * 0.4 + _onehot("o")[0] * 0.6  # now it leans to o
    posterior, _, _ = reading.decide(probs, tall, [[0, 1, 2]])
    assert C[posterior[1].argmax()] == "O"


def test_a_stroke_reads_1_among_digits_and_l_among_letters():
    boxes = np.array([_box(0, 1.09, 0.09), _box(30, 1.09, 0.09), _box(60, 1.09, 0.09)])
    bar = _onehot("1", {"1": "1lI"})[0]
    digits = np.stack([_onehot("2")[0], bar, _onehot("7")[0]])
    letters = np.stack([_onehot("b")[0], bar, _onehot("d")[0]])
    assert C[reading.decide(digits, boxes, [[0, 1, 2]])[0][1].argmax()] == "1"
    assert C[reading.decide(letters, boxes, [[0, 1, 2]])[0][1].argmax()] in "lI"


def test_read_with_an_oracle_sets_case_and_spaces():
    line = words.render_line("cow SOX", seed=4)
    case_blind = {c: c.lower() + c.upper() for c in "cCoOwWsSxX"}

    def model(pixels):  # a case-blind model that knows the letters
        assert pixels.shape == (6, 48, 48, 1)
        return _onehot("cow SOX", case_blind)

    result = reading.read(line.image, model)
    assert result.text.lower() == "cow sox"
    assert len(result.chars) == 6
    # the line is estimated: capitals of SOX fix it only against the lowercase word's height
    assert abs(result.line.cap_height - line.cap_height) < 0.15 * line.cap_height


def test_read_end_to_end_on_a_trained_run(trained_run, tmp_path):
    from charjax import cli
    from charjax.recognizer import Recognizer

    workdir, _ = trained_run
    rec = Recognizer.load(workdir)
    line = words.render_line("Ab 12", seed=0)
    path = tmp_path / "line.png"
    Image.fromarray(255 - line.image).save(path)  # dark ink on white paper
    result = rec.read(str(path))
    assert len(result.chars) == 4 and len(result.text.replace(" ", "")) == 4
    for got, want in zip(result.chars, line.boxes, strict=True):
        assert np.all(np.abs(np.array(got.box) - want) <= 2)
        assert len(got.top) == 3 and got.char == got.top[0][0]
    out = tmp_path / "read.json"
    with pytest.raises(SystemExit) as exit_info:
        cli.run(["charjax", "read", f"--workdir={workdir}", f"--json={out}", str(path)])
    assert exit_info.value.code in (0, None)
    saved = json.loads(out.read_text())
    assert saved[0]["text"] == result.text and len(saved[0]["chars"]) == 4


def test_blank_image_reads_nothing_with_a_warning():
    result = reading.read(np.zeros((30, 80), np.uint8), lambda p: np.zeros((len(p), 62)))
    assert result.text == "" and result.warnings


def test_read_api_answers_the_predict_request_forms(trained_run):
    import io

    from starlette.testclient import TestClient

    from charjax.recognizer import Recognizer
    from charjax.serve.app import create_app

    rec = Recognizer.load(trained_run[0])
    line = words.render_line("Ab 12", seed=0)
    png = io.BytesIO()
    Image.fromarray(255 - line.image).save(png, format="PNG")
    client = TestClient(create_app(rec))
    answers = [
        client.post("/read", files={"file": ("line.png", png.getvalue(), "image/png")}),
        client.post("/read", content=png.getvalue(), headers={"content-type": "image/png"}),
        client.post("/read?top_k=2", json={"pixels": (255 - line.image).tolist()}),
    ]
    for r in answers:
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["text"] == rec.read(line.image).text and len(body["chars"]) == 4
    assert len(answers[2].json()["chars"][0]["top"]) == 2
    bad = client.post("/read", content=b"not a png", headers={"content-type": "image/png"})
    assert bad.status_code == 400 and "error" in bad.json()


def test_correct_saves_a_labelled_png_adapt_reads(trained_run, tmp_path):
    import shutil

    from starlette.testclient import TestClient

    from charjax.datasets import folder
    from charjax.recognizer import Recognizer
    from charjax.serve.app import create_app

    run = tmp_path / "run"
    shutil.copytree(trained_run[0], run, ignore=shutil.ignore_patterns("tb", "*.lock"))
    client = TestClient(create_app(Recognizer.load(run)))
    assert "canvas" in client.get("/read").text
    line = words.render_line("ab", seed=0)
    for index, char, count in ((0, "A", 1), (1, "b", 2)):
        box = [int(v) for v in line.boxes[index]]
        r = client.post("/correct", json={"pixels": line.image.tolist(), "box": box,
                                          "char": char})
        assert r.status_code == 200 and r.json()["count"] == count
    dataset, _ = folder.load(run / "corrections", framing="fit")
    assert sorted(C[i] for i in dataset.labels) == ["A", "b"]
    assert len(list((run / "corrections_raw").glob("*.png"))) == 2
    bad = client.post("/correct", json={"pixels": line.image.tolist(), "box": box, "char": "?"})
    assert bad.status_code == 400
