"""Reading a word or a line: an image of separately written characters -> text.

A model that sees one fit-framed character cannot tell `o` from `O` or `x` from `X`: they
differ in size and height on the line, which framing removes. On a line that geometry is
there to see, so `read` (1) segments the ink into characters, (2) frames each as the model
was trained and reads its probabilities in one batch, (3) estimates the line (baseline and
cap height) from the boxes, weighting each character by how sure the model is of its place
on the line (an `a` says where the x-height is, an `o`-or-`O` says little), and (4) decides
each character by the model's probabilities times the likelihood of its box under each
class's place on the line (LINE_PLACE, measured on charjax's own synthetic glyphs by
benchmarks/calibrate_reading.py) times a context prior (digits among digits, letters among
letters). Spaces come from gaps much wider than the line's typical gap.

The functions here are pure: `read` takes the model as a function from prepared inputs
[N, 48, 48, 1] to probabilities [N, 62] (a Recognizer's `probabilities`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage

from charjax import charset, framing

INK_THRESHOLD = 0.35  # of the peak: what counts as ink when segmenting
MIN_PIECE_PIXELS = 3  # connected pieces smaller than this are specks, not ink
MERGE_OVERLAP = 0.5  # pieces whose columns overlap by this share of the narrower are one
DOT_SIZE = 0.3  # a piece no larger than this many line heights may be a dot ...
DOT_REACH = 0.3  # ... joined to the character whose top is within this many line heights
SPLIT_WIDTH = 1.6  # a piece wider than this many cap heights may be touching characters
SPACE_GAP = 0.45  # a gap wider than this many cap heights (and 2.5 typical gaps) is a space
# Exponent of the geometric likelihood (naive Bayes: 1) and the cap on its squared z-scores
# (one odd stroke must not veto a class): the best of a small grid on synthetic lines of a
# seed of their own (benchmarks/calibrate_reading.py --run).
GEOMETRY_WEIGHT = 1.0
MAX_Z2 = 16.0
CONTEXT_WEIGHT = 1.0  # the base rate counts as this many neighbours in the context prior
LINE_ITERATIONS = 3  # rounds of line estimation and decision

# Per class: where its ink box sits on the line, in cap heights from the baseline: (top above
# the baseline, bottom below it, and the spread of each). Fitted by
# benchmarks/calibrate_reading.py on line-framed synthetic glyphs (seed 0, 200 per class).
LINE_PLACE: dict[str, tuple[float, float, float, float]] = {
    '0': (1.096, 0.093, 0.060, 0.054),
    '1': (1.061, 0.086, 0.064, 0.055),
    '2': (1.085, 0.125, 0.054, 0.058),
    '3': (1.082, 0.089, 0.057, 0.053),
    '4': (1.067, 0.083, 0.067, 0.056),
    '5': (1.092, 0.085, 0.058, 0.052),
    '6': (1.074, 0.093, 0.058, 0.053),
    '7': (1.089, 0.077, 0.058, 0.063),
    '8': (1.079, 0.088, 0.055, 0.055),
    '9': (1.073, 0.070, 0.047, 0.050),
    'A': (1.049, 0.095, 0.054, 0.055),
    'B': (1.084, 0.093, 0.057, 0.056),
    'C': (1.089, 0.095, 0.056, 0.056),
    'D': (1.079, 0.099, 0.058, 0.057),
    'E': (1.093, 0.126, 0.050, 0.055),
    'F': (1.108, 0.085, 0.065, 0.055),
    'G': (1.089, 0.099, 0.054, 0.064),
    'H': (1.092, 0.113, 0.055, 0.049),
    'I': (1.085, 0.088, 0.056, 0.056),
    'J': (1.084, 0.084, 0.058, 0.064),
    'K': (1.093, 0.113, 0.058, 0.045),
    'L': (1.057, 0.118, 0.059, 0.054),
    'M': (1.078, 0.103, 0.059, 0.056),
    'N': (1.091, 0.095, 0.057, 0.053),
    'O': (1.087, 0.084, 0.056, 0.058),
    'P': (1.087, 0.082, 0.055, 0.055),
    'Q': (1.081, 0.152, 0.056, 0.068),
    'R': (1.079, 0.115, 0.054, 0.057),
    'S': (1.084, 0.087, 0.058, 0.054),
    'T': (1.092, 0.083, 0.054, 0.057),
    'U': (1.097, 0.098, 0.056, 0.055),
    'V': (1.108, 0.069, 0.066, 0.065),
    'W': (1.105, 0.081, 0.056, 0.046),
    'X': (1.086, 0.109, 0.053, 0.044),
    'Y': (1.091, 0.084, 0.059, 0.051),
    'Z': (1.086, 0.125, 0.055, 0.054),
    'a': (0.753, 0.095, 0.046, 0.058),
    'b': (1.080, 0.095, 0.056, 0.058),
    'c': (0.757, 0.086, 0.061, 0.056),
    'd': (1.059, 0.100, 0.063, 0.054),
    'e': (0.753, 0.083, 0.045, 0.053),
    'f': (1.079, 0.107, 0.063, 0.093),
    'g': (0.747, 0.413, 0.056, 0.070),
    'h': (1.064, 0.086, 0.056, 0.051),
    'i': (1.002, 0.088, 0.075, 0.054),
    'j': (1.000, 0.415, 0.083, 0.058),
    'k': (1.084, 0.097, 0.055, 0.053),
    'l': (1.089, 0.080, 0.058, 0.056),
    'm': (0.767, 0.102, 0.052, 0.057),
    'n': (0.751, 0.089, 0.045, 0.059),
    'o': (0.772, 0.094, 0.051, 0.052),
    'p': (0.754, 0.420, 0.060, 0.070),
    'q': (0.754, 0.402, 0.064, 0.073),
    'r': (0.741, 0.066, 0.054, 0.062),
    's': (0.736, 0.076, 0.053, 0.067),
    't': (1.021, 0.083, 0.064, 0.056),
    'u': (0.744, 0.099, 0.054, 0.051),
    'v': (0.775, 0.077, 0.054, 0.056),
    'w': (0.771, 0.084, 0.052, 0.056),
    'x': (0.754, 0.112, 0.055, 0.046),
    'y': (0.760, 0.420, 0.064, 0.064),
    'z': (0.758, 0.110, 0.044, 0.060),
}

Probabilities = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class Line:
    """The line a word is written on: baseline row and cap height, pixels of the image."""

    baseline: float
    cap_height: float

    @property
    def x_height(self) -> float:
        return self.cap_height * float(np.median([LINE_PLACE[c][0] for c in "acemnorsuvwxz"]))


@dataclasses.dataclass(frozen=True)
class Char:
    """One character read: its box (x0, y0, x1, y1; end-exclusive), answer, top-3, the
    model's own top-3, and why the answer differs from the model's first choice (or None)."""

    char: str
    box: tuple[int, int, int, int]
    top: list[tuple[str, float]]
    model_top: list[tuple[str, float]]
    reason: str | None = None
    warning: str | None = None


@dataclasses.dataclass(frozen=True)
class Reading:
    text: str
    chars: list[Char]
    line: Line | None
    warnings: list[str]

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {
            "text": self.text,
            "line": dataclasses.asdict(self.line) if self.line else None,
            "warnings": list(self.warnings),
            "chars": [
                {
                    "char": c.char,
                    "box": list(c.box),
                    "top": [[k, round(p, 4)] for k, p in c.top],
                    "model_top": [[k, round(p, 4)] for k, p in c.model_top],
                    "reason": c.reason,
                    "warning": c.warning,
                }
                for c in self.chars
            ],
        }


# ----------------------------------------------------------------------------- segmentation


@dataclasses.dataclass(frozen=True)
class Segment:
    """A character's ink: box (x0, y0, x1, y1), end-exclusive, and its mask within the box."""

    box: tuple[int, int, int, int]
    mask: np.ndarray
    warning: str | None = None


def segment(ink: np.ndarray) -> list[Segment]:
    """Float ink [H, W] (0 background, 1 ink) -> characters, left to right.

    Connected pieces are grouped when their columns overlap by MERGE_OVERLAP of the narrower
    (the dot of an `i`, the bars of a crossed `t` or a `=`, strokes of a letter written in
    several), then a group much wider than the line is tall is split where the columns hold
    least ink, or kept with a warning when no column is clear.
    """
    mask = ink > INK_THRESHOLD * max(float(ink.max(initial=0.0)), 1e-6)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count == 0:
        return []
    slices = ndimage.find_objects(labels)
    sizes = ndimage.sum_labels(mask, labels, np.arange(1, count + 1))
    pieces = [
        (i + 1, (s[1].start, s[0].start, s[1].stop, s[0].stop))
        for i, s in enumerate(slices)
        if s is not None and sizes[i] >= MIN_PIECE_PIXELS
    ]
    groups = _group(pieces)
    segments = []
    for members in groups:
        ids = [pieces[m][0] for m in members]
        boxes = np.array([pieces[m][1] for m in members])
        box = (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())
        sub = np.isin(labels[box[1] : box[3], box[0] : box[2]], ids)
        segments.append(Segment(tuple(int(v) for v in box), sub))
    segments.sort(key=lambda s: (s.box[0] + s.box[2]) / 2)
    height = _typical_height(segments)
    segments = _attach_dots(segments, height)
    out = []
    for s in segments:
        out.extend(_split(s, height))
    return out


def _group(pieces: list[tuple[int, tuple[int, int, int, int]]]) -> list[list[int]]:
    """Indices of pieces grouped (union-find) by their horizontal overlap."""
    parent = list(range(len(pieces)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    changed = True
    while changed:  # merged groups are wider, so compare groups until nothing changes
        changed = False
        spans: dict[int, list[int]] = {}
        for i, (_, (x0, _, x1, _)) in enumerate(pieces):
            root = find(i)
            span = spans.setdefault(root, [x0, x1])
            span[0], span[1] = min(span[0], x0), max(span[1], x1)
        roots = sorted(spans, key=lambda r: spans[r][0])
        for a, b in zip(roots[:-1], roots[1:], strict=True):
            (a0, a1), (b0, b1) = spans[a], spans[b]
            overlap = min(a1, b1) - max(a0, b0)
            if overlap > 0 and overlap >= MERGE_OVERLAP * min(a1 - a0, b1 - b0):
                parent[find(b)] = find(a)
                changed = True
                break
    groups: dict[int, list[int]] = {}
    for i in range(len(pieces)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def _attach_dots(segments: list[Segment], height: float) -> list[Segment]:
    """Small pieces (the dot of a slanted `i` or `j`, which may sit beside its stem's box)
    joined to the character whose top is nearest, when it is within DOT_REACH heights."""
    segments = list(segments)
    small = [s for s in segments if max(s.box[2] - s.box[0], s.box[3] - s.box[1])
             <= DOT_SIZE * height]
    for dot in small:
        others = [t for t in segments if t is not dot and t not in small]
        if not others or dot not in segments:
            continue
        centre = (dot.box[0] + dot.box[2]) / 2
        distances = []
        for t in others:
            rows = max(1, int(round(0.3 * (t.box[3] - t.box[1]))))
            cols = np.flatnonzero(t.mask[:rows].any(axis=0)) + t.box[0]
            lo, hi = (cols[0], cols[-1] + 1) if cols.size else (t.box[0], t.box[2])
            distances.append(max(0.0, lo - centre, centre - hi))
        best = int(np.argmin(distances))
        if distances[best] > DOT_REACH * height:
            continue
        host = others[best]
        segments[segments.index(host)] = _union(host, dot)
        segments.remove(dot)
    return segments


def _union(a: Segment, b: Segment) -> Segment:
    box = (min(a.box[0], b.box[0]), min(a.box[1], b.box[1]),
           max(a.box[2], b.box[2]), max(a.box[3], b.box[3]))
    mask = np.zeros((box[3] - box[1], box[2] - box[0]), bool)
    for s in (a, b):
        mask[s.box[1] - box[1] : s.box[3] - box[1], s.box[0] - box[0] : s.box[2] - box[0]] |= (
            s.mask)
    return Segment(box, mask, a.warning or b.warning)


def _typical_height(segments: list[Segment]) -> float:
    """A rough cap height before any character is read: the tallest quarter's median."""
    heights = np.sort([s.box[3] - s.box[1] for s in segments])
    return float(np.median(heights[-max(1, len(heights) // 4) :]))


def _split(s: Segment, height: float) -> list[Segment]:
    """A too-wide segment cut at its emptiest column (recursively), or kept with a warning."""
    x0, y0, x1, y1 = s.box
    width = x1 - x0
    if width <= SPLIT_WIDTH * height:
        return [s]
    profile = s.mask.sum(axis=0)
    lo, hi = int(width * 0.25), int(width * 0.75)
    cut = lo + int(np.argmin(profile[lo:hi]))
    if profile[cut] > max(2, 0.15 * profile.max()):
        warning = "touching characters? one box is much wider than the line is tall"
        return [dataclasses.replace(s, warning=warning)]
    parts = []
    for a, b in ((0, cut), (cut + 1, width)):
        sub = s.mask[:, a:b]
        rows, cols = np.flatnonzero(sub.any(1)), np.flatnonzero(sub.any(0))
        if rows.size == 0:
            continue
        box = (x0 + a + cols[0], y0 + rows[0], x0 + a + cols[-1] + 1, y0 + rows[-1] + 1)
        piece = sub[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        parts.extend(_split(Segment(tuple(int(v) for v in box), piece), height))
    return parts


# ----------------------------------------------------------------------------- the line


def _place_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    table = np.array([LINE_PLACE[c] for c in charset.CLASSES], np.float64)
    return table[:, 0], table[:, 1], table[:, 2], table[:, 3]


def estimate_line(boxes: np.ndarray, probs: np.ndarray) -> Line:
    """Baseline and cap height from boxes [N, 4] and class probabilities [N, 62].

    Each box's top and bottom are modelled as baseline - top_c * cap and baseline +
    bottom_c * cap, with (top_c, bottom_c) the expectation of LINE_PLACE under the
    character's probabilities; each equation is weighted by the inverse of its variance
    (the class's own spread plus the spread of that expectation), so a character whose
    place the model is unsure of (o or O?) counts little, and a word of capitals or digits
    fixes the cap height by its sure members. Solved by weighted least squares, twice with
    outliers (|z| > 3) down-weighted; falls back to medians when the solution is degenerate.
    """
    top_c, bottom_c, top_s, bottom_s = _place_table()
    tops, bottoms = boxes[:, 1].astype(float), boxes[:, 3].astype(float)
    et, eb = probs @ top_c, probs @ bottom_c
    vt = probs @ (top_s**2 + top_c**2) - et**2
    vb = probs @ (bottom_s**2 + bottom_c**2) - eb**2
    # rows: [baseline, cap] . [1, -et] = top;  [1, eb] = bottom
    ones = np.ones_like(et)
    design = np.concatenate([np.stack([ones, -et], 1), np.stack([ones, eb], 1)])
    target = np.concatenate([tops, bottoms])
    variance = np.concatenate([vt, vb])
    spans = float(np.median(bottoms - tops)) / max(float(np.median(et + eb)), 0.1)
    fallback = Line(float(np.median(bottoms)), spans)
    robust = np.ones_like(target)
    solution = None
    for _ in range(3):
        scale = max(solution[1], 1.0) if solution is not None else fallback.cap_height
        weights = robust / (variance * scale**2 + 0.25)  # + a quarter pixel squared: rows
        a = design * weights[:, None]
        try:
            solution = np.linalg.solve(design.T @ a + 1e-9 * np.eye(2), a.T @ target)
        except np.linalg.LinAlgError:
            return fallback
        if not np.all(np.isfinite(solution)) or solution[1] <= 1.0:
            return fallback
        z = (target - design @ solution) / np.sqrt(variance * solution[1] ** 2 + 0.25)
        robust = np.where(np.abs(z) > 3.0, 3.0 / np.abs(z), 1.0)
    return Line(float(solution[0]), float(solution[1]))


def place_on_line(boxes: np.ndarray, line: Line) -> np.ndarray:
    """[N, 2]: each box's top above and bottom below the baseline, in cap heights."""
    top = (line.baseline - boxes[:, 1]) / line.cap_height
    bottom = (boxes[:, 3] - line.baseline) / line.cap_height
    return np.stack([top, bottom], axis=1)


def geometry_log_likelihood(place: np.ndarray) -> np.ndarray:
    """[N, 62]: log-likelihood of each box's place on the line under each class's LINE_PLACE
    (independent Gaussians for top and bottom, squared z-scores capped at MAX_Z2)."""
    top_c, bottom_c, top_s, bottom_s = _place_table()
    zt = np.minimum(((place[:, :1] - top_c) / top_s) ** 2, MAX_Z2)
    zb = np.minimum(((place[:, 1:] - bottom_c) / bottom_s) ** 2, MAX_Z2)
    return -0.5 * (zt + zb) - np.log(top_s * bottom_s)


def context_log_prior(probs: np.ndarray, words: Sequence[Sequence[int]]) -> np.ndarray:
    """[N, 62]: log prior of digit vs letter from the other characters of the same word.

    The model learned with every class equally likely, so a digit at the base rate b = 10/62.
    With d the expected number of digits among a word's other n characters, a character is
    taken to be a digit with probability (d + CONTEXT_WEIGHT b) / (n + CONTEXT_WEIGHT), and
    its digit classes are re-weighted by that over b (its letters by the rest over 1 - b):
    a stroke among digits reads `1`, an oval among letters `o`; a lone character, or one
    among characters the model is unsure of, keeps the model's own odds.
    """
    is_digit = np.array([c.isdigit() for c in charset.CLASSES])
    base = is_digit.mean()
    digit_p = probs[:, is_digit].sum(axis=1)
    out = np.zeros_like(probs)
    for word in words:
        word = list(word)
        total = digit_p[word].sum()
        for i in word:
            others = len(word) - 1
            d = (total - digit_p[i] + CONTEXT_WEIGHT * base) / (others + CONTEXT_WEIGHT)
            d = float(np.clip(d, 1e-3, 1 - 1e-3))
            out[i] = np.where(is_digit, np.log(d / base), np.log((1 - d) / (1 - base)))
    return out


def decide(
    probs: np.ndarray, boxes: np.ndarray, words: Sequence[Sequence[int]]
) -> tuple[np.ndarray, np.ndarray, Line]:
    """(posterior [N, 62], the same without geometry [N, 62], the line): the model's
    probabilities times context and geometry, with the line re-estimated from the posterior."""
    log_model = np.log(np.maximum(probs, 1e-12))
    posterior = probs
    with_context = probs
    line = estimate_line(boxes, probs)
    for _ in range(LINE_ITERATIONS):
        context = context_log_prior(posterior, words)
        geometric = geometry_log_likelihood(place_on_line(boxes, line))
        with_context = _softmax(log_model + context)
        posterior = _softmax(log_model + context + GEOMETRY_WEIGHT * geometric)
        line = estimate_line(boxes, posterior)
    return posterior, with_context, line


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ----------------------------------------------------------------------------- reading


def crops(ink: np.ndarray, segments: Sequence[Segment], model_framing: str, line: Line | None
          ) -> np.ndarray:
    """uint8 [N, 48, 48, 1]: each segment alone (other ink masked out), framed as the model's
    training images were (`framing.prepare`); line framing takes a window of the line."""
    out = []
    height, width = ink.shape
    pad = 2  # the soft edge of the strokes, below the segmentation's threshold, comes along
    for s in segments:
        x0, y0, x1, y1 = s.box
        top, left = max(y0 - pad, 0), max(x0 - pad, 0)
        bottom, right = min(y1 + pad, height), min(x1 + pad, width)
        keep = np.zeros((bottom - top, right - left), bool)
        keep[y0 - top : y1 - top, x0 - left : x1 - left] = s.mask
        piece = ink[top:bottom, left:right] * ndimage.binary_dilation(keep, iterations=pad)
        if model_framing == "line" and line is not None:
            alone = np.zeros_like(ink)
            alone[top:bottom, left:right] = piece
            side = framing.SIZE * line.cap_height / framing.LINE_CAP
            image = _window(
                alone, (x0 + x1) / 2 - side / 2,
                line.baseline - framing.LINE_BASE / framing.SIZE * side, side,
            )
        else:
            image = piece
        out.append(framing.prepare(image, model_framing).pixels)
    return np.stack(out) if out else np.zeros((0, *charset.IMAGE_SHAPE), np.uint8)


def _window(ink: np.ndarray, left: float, top: float, side: float) -> np.ndarray:
    """The square region [top, top + side) x [left, left + side) of `ink`, zero outside."""
    n = int(round(side))
    out = np.zeros((n, n), ink.dtype)
    t, lft = int(round(top)), int(round(left))
    ys = slice(max(t, 0), min(t + n, ink.shape[0]))
    xs = slice(max(lft, 0), min(lft + n, ink.shape[1]))
    out[ys.start - t : ys.stop - t, xs.start - lft : xs.stop - lft] = ink[ys, xs]
    return out


def read(
    image: np.ndarray,
    probabilities: Probabilities,
    model_framing: str = "fit",
    top_k: int = 3,
) -> Reading:
    """An image of a word or line (any size, dark on light or light on dark) -> text.

    `probabilities`: prepared inputs [N, 48, 48, 1] uint8 -> [N, 62] (one batched call).
    """
    ink, contrast = framing.ink_image(image)
    if contrast < framing.BLANK_CONTRAST:
        return Reading("", [], None, ["blank image: no ink to read"])
    segments = segment(ink)
    if not segments:
        return Reading("", [], None, ["blank image: no ink to read"])
    boxes = np.array([s.box for s in segments], np.float64)
    rough = Line(float(np.median(boxes[:, 3])), _typical_height(segments))
    probs = np.asarray(probabilities(crops(ink, segments, model_framing, rough)), np.float64)
    if model_framing == "line":  # line-framed models see size already: frame on the line
        line = estimate_line(boxes, probs)
        probs = np.asarray(probabilities(crops(ink, segments, model_framing, line)), np.float64)
    words = _words(boxes)
    posterior, with_context, line = decide(probs, boxes, words)
    place = place_on_line(boxes, line)
    chars = []
    for i, s in enumerate(segments):
        best, model_best = int(posterior[i].argmax()), int(probs[i].argmax())
        reason = None
        if best != model_best:
            reason = _reason(
                charset.CLASSES[model_best],
                charset.CLASSES[best],
                place[i],
                context_only=int(with_context[i].argmax()) == best,
            )
        chars.append(
            Char(
                char=charset.CLASSES[best],
                box=s.box,
                top=_top(posterior[i], top_k),
                model_top=_top(probs[i], top_k),
                reason=reason,
                warning=s.warning,
            )
        )
    text = " ".join("".join(chars[i].char for i in word) for word in words)
    warnings = [c.warning for c in chars if c.warning]
    return Reading(text, chars, line, warnings)


def _words(boxes: np.ndarray) -> list[list[int]]:
    """Indices of the boxes (left to right) split into words at gaps much wider than usual:
    more than SPACE_GAP cap heights and 2.5 times the median gap."""
    if len(boxes) == 0:
        return []
    gaps = boxes[1:, 0] - boxes[:-1, 2]
    height = float(np.median(boxes[:, 3] - boxes[:, 1]))
    typical = float(np.median(gaps)) if len(gaps) else 0.0
    threshold = max(SPACE_GAP * height, 2.5 * max(typical, 1.0))
    words, current = [], [0]
    for i, gap in enumerate(gaps, start=1):
        if gap > threshold:
            words.append(current)
            current = []
        current.append(i)
    words.append(current)
    return words


def _top(p: np.ndarray, k: int) -> list[tuple[str, float]]:
    best = np.argsort(-p, kind="stable")[:k]
    return [(charset.CLASSES[i], float(p[i])) for i in best]


def _reason(model: str, chosen: str, place: np.ndarray, context_only: bool) -> str:
    if context_only:
        kind = "digits" if chosen.isdigit() else "letters"
        return f"context: {model!r} -> {chosen!r} among {kind}"
    return (
        f"geometry: {model!r} -> {chosen!r}: top {place[0]:.2f}, bottom {place[1]:+.2f} "
        "cap heights from the baseline"
    )
