"""Hostile requests for `POST /predict`: well-formed-but-wrong JSON, malformed multipart,
decompression bombs, wrong headers. Each is small (at most ~100 KB) and carries the statuses
a correct server may answer; none may be a 5xx. Used by tests/test_serve.py (through
Starlette's TestClient) and by benchmarks/serve_load.py --hostile (over HTTP, for memory).
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from typing import NamedTuple

import numpy as np
from PIL import Image


class Hostile(NamedTuple):
    id: str
    body: bytes
    headers: dict[str, str]
    ok: frozenset[int]  # statuses a correct server may answer
    query: str = ""


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def encoded(fmt: str, mode: str = "L") -> bytes:
    """A small white image with a dark bar, in `fmt` and `mode`."""
    arr = np.full((40, 40), 255, np.uint8)
    arr[8:32, 18:22] = 0
    out = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(out, format=fmt)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.cache
def png_bomb(width: int, height: int, rgba: bool = False) -> bytes:
    """A valid PNG of width x height zeros: a few dozen KB that decode to width*height*(1|4)
    bytes."""
    row = b"\0" * (1 + width * (4 if rgba else 1))
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 6 if rgba else 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data)
            + _chunk(b"IEND", b""))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with almost no data behind it."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(b"\0" * 100)) + _chunk(b"IEND", b""))


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose frame header is patched to claim width x height."""
    data = bytearray(encoded("JPEG"))
    start = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, start + 5, height, width)
    return bytes(data)


def gif_claiming(width: int, height: int) -> bytes:
    """A small GIF whose logical screen claims width x height."""
    data = bytearray(encoded("GIF"))
    struct.pack_into("<HH", data, 6, width, height)
    return bytes(data)


@functools.cache
def ztxt_bomb(chunks: int = 40) -> bytes:
    """A tiny PNG carrying `chunks` compressed text chunks of 1 MB each (~1 KB apiece)."""
    base = png(np.zeros((8, 8), np.uint8))
    blob = zlib.compress(b"\0" * 1_000_000, 9)
    text = b"".join(_chunk(b"zTXt", b"k%d\0\0" % i + blob) for i in range(chunks))
    return base[:33] + text + base[33:]  # after the 33-byte signature + IHDR


def bombs() -> list[Hostile]:
    """Decompression bombs of at most ~100 KB each: refused from their header, or (the largest
    image the server decodes) answered."""
    image = {"content-type": "image/png"}
    return [
        Hostile("bomb_png_9000", png_bomb(9000, 9000), image, frozenset({413})),
        Hostile("bomb_png_rgba_4096", png_bomb(4096, 4096, rgba=True), image,
                frozenset({200})),
        Hostile("bomb_png_claims_100000", png_claiming(100000, 100000), image,
                frozenset({413})),
        Hostile("bomb_jpeg_claims_60000", jpeg_claiming(60000, 60000),
                {"content-type": "image/jpeg"}, frozenset({413})),
        Hostile("bomb_gif_claims_65535", gif_claiming(65535, 65535),
                {"content-type": "image/gif"}, frozenset({413})),
        Hostile("bomb_png_ztxt", ztxt_bomb(), image, frozenset({200, 400})),
    ]


def multipart(parts: list[tuple[str, str | None, str | None, bytes]],
              boundary: str = "XyZ") -> bytes:
    """A multipart body of (field name, filename or None, content type or None, data)."""
    out = b""
    for name, filename, kind, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename
                                                     else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if kind:
            out += f"Content-Type: {kind}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def corpus() -> list[Hostile]:
    """Every hostile request, bombs included."""
    good = encoded("PNG")
    J = {"content-type": "application/json"}
    P = {"content-type": "image/png"}
    M = {"content-type": "multipart/form-data; boundary=XyZ"}
    bad, ok, too_large = frozenset({400}), frozenset({200}), frozenset({413})

    def j(id_: str, text: bytes, want: frozenset[int] = bad) -> Hostile:
        return Hostile(id_, text, J, want)

    def m(id_: str, parts: list, want: frozenset[int] = bad, headers: dict = M) -> Hostile:
        return Hostile(id_, multipart(parts), headers, want)

    file = ("file", "a.png", "image/png", good)
    return [
        # JSON: numbers Python's parser or the pixel code cannot take
        j("json_huge_float", b'{"pixels": [[1e999, 0]]}'),
        j("json_nan", b'{"pixels": [[NaN]]}'),
        j("json_infinity", b'{"pixels": [[-Infinity, 0]]}'),
        j("json_5000_digits", b'{"pixels": [[1' + b"0" * 5000 + b"]]}"),
        j("json_int_overflow", b'{"pixels": [[100000000000000000000000000]]}'),
        j("json_int_overflow_among_floats", b'{"pixels": [[100000000000000000000000000, 0.5]]}'),
        j("json_deep_nesting", b'{"pixels": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        j("json_3d", b'{"pixels": [[[1, 2]], [[3, 4]]]}'),
        j("json_ragged_short", b'{"pixels": [[1, 2], [3]]}'),
        j("json_ragged_long", b'{"pixels": [[1], [2, 3]]}'),
        j("json_string_pixel", b'{"pixels": [["12"]]}'),
        j("json_bool_pixel", b'{"pixels": [[true, 0]]}'),
        j("json_null_pixel", b'{"pixels": [[null]]}'),
        j("json_object_pixel", b'{"pixels": [[{}]]}'),
        j("json_pixels_object", b'{"pixels": {}}'),
        j("json_pixels_string", b'{"pixels": "0,0,0"}'),
        j("json_pixels_number", b'{"pixels": 5}'),
        j("json_pixels_null", b'{"pixels": null}'),
        j("json_pixels_empty", b'{"pixels": []}'),
        j("json_rows_empty", b'{"pixels": [[], []]}'),
        j("json_pixels_1d", b'{"pixels": [1, 2, 3]}'),
        j("json_row_not_a_list", b'{"pixels": [[1, 2], 3]}'),
        j("json_float_over_one", b'{"pixels": [[0.5, 300]]}'),
        j("json_int_negative", b'{"pixels": [[-1, 0]]}'),
        j("json_int_over_255", b'{"pixels": [[256, 0]]}'),
        j("json_too_wide", b'{"pixels": [[' + b"0," * 2100 + b"0]]}", too_large),
        j("json_too_tall", b'{"pixels": [' + b"[0]," * 2100 + b"[0]]}", too_large),
        j("json_top_k_fraction", b'{"pixels": [[0, 255]], "top_k": 2.5}'),
        j("json_top_k_whole_float", b'{"pixels": [[0, 255]], "top_k": 3.0}'),
        j("json_top_k_negative", b'{"pixels": [[0, 255]], "top_k": -3}'),
        j("json_top_k_huge", b'{"pixels": [[0, 255]], "top_k": 100000000000000000000000}'),
        j("json_top_k_bool", b'{"pixels": [[0, 255]], "top_k": true}'),
        j("json_top_k_string", b'{"pixels": [[0, 255]], "top_k": "3"}'),
        j("json_top_k_null", b'{"pixels": [[0, 255]], "top_k": null}'),
        j("json_top_k_list", b'{"pixels": [[0, 255]], "top_k": [3]}'),
        j("json_unknown_key", b'{"pixels": [[0, 255]], "topk": 3}'),
        j("json_duplicate_key", b'{"pixels": [[0, 255]], "pixels": [[255, 0]]}'),
        j("json_top_level_list", b"[[0, 255]]"),
        j("json_top_level_string", b'"pixels"'),
        j("json_top_level_number", b"42"),
        j("json_top_level_null", b"null"),
        j("json_invalid_utf8", b'{"pixels": [[0]], "x\xff": 1}'),
        j("json_empty", b""),
        j("json_whitespace", b"   \n"),
        j("json_truncated", b'{"pixels": [[0, 2'),
        j("json_trailing_garbage", b'{"pixels": [[0]]} xyz'),
        j("json_body_is_a_png", good),
        j("json_utf16", '{"pixels": [[0, 255], [255, 0]]}'.encode("utf-16"), ok),
        Hostile("json_charset_latin1", b'{"pixels": [[0, 255], [255, 0]]}',
                {"content-type": "application/json; charset=latin-1"}, ok),
        # headers
        Hostile("type_text_plain", b"hello", {"content-type": "text/plain"}, frozenset({415})),
        Hostile("type_missing", b"hello", {}, frozenset({415})),
        Hostile("type_form_urlencoded", b"pixels=1",
                {"content-type": "application/x-www-form-urlencoded"}, frozenset({415})),
        Hostile("type_garbage", good, {"content-type": ";;;"}, frozenset({415})),
        Hostile("declared_length_huge", b"x" * 10,
                {"content-type": "image/png", "content-length": "999999999999"}, too_large),
        # raw images
        Hostile("image_body_is_json", b'{"pixels": [[1]]}', P, bad),
        Hostile("image_truncated_png", good[: len(good) // 2], P, bad),
        Hostile("image_png_signature_only", good[:8], P, bad),
        Hostile("image_svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
                {"content-type": "image/svg+xml"}, bad),
        Hostile("image_eps", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 9 9\nshowpage\n",
                {"content-type": "application/octet-stream"}, bad),
        Hostile("image_png_zero_width", png_claiming(0, 10), P, bad),
        Hostile("image_empty", b"", P, bad),
        Hostile("image_one_pixel", png(np.zeros((1, 1), np.uint8)), P, ok),
        Hostile("image_sliver", png(np.zeros((1, 3000), np.uint8)), P, ok),
        Hostile("image_16bit", png(np.arange(4096, dtype=np.uint16).reshape(64, 64) * 16), P, ok),
        Hostile("image_palette", encoded("PNG", "P"), P, ok),
        Hostile("image_gif", encoded("GIF"), {"content-type": "image/gif"}, ok),
        Hostile("image_bmp", encoded("BMP"), {"content-type": "image/bmp"}, ok),
        Hostile("image_tiff_float", encoded("TIFF", "F"), {"content-type": "image/tiff"}, ok),
        Hostile("image_webp", encoded("WEBP"), {"content-type": "image/webp"}, ok),
        Hostile("image_cmyk_jpeg", encoded("JPEG", "CMYK"), {"content-type": "image/jpeg"}, ok),
        Hostile("image_octet_stream", good, {"content-type": "application/octet-stream"}, ok),
        *bombs(),
        # multipart
        m("multipart_no_boundary", [file], headers={"content-type": "multipart/form-data"}),
        Hostile("multipart_wrong_boundary", multipart([file], "Other"), M, bad),
        m("multipart_two_files", [file, file]),
        m("multipart_file_as_text", [("file", None, None, b"hello")]),
        m("multipart_many_fields", [(f"f{i}", None, None, b"x") for i in range(20)] + [file]),
        m("multipart_unknown_field", [file, ("topk", None, None, b"3")]),
        m("multipart_top_k_not_a_number", [file, ("top_k", None, None, b"lots")]),
        m("multipart_top_k_as_a_file", [file, ("top_k", "k.txt", "text/plain", b"3")]),
        m("multipart_top_k", [file, ("top_k", None, None, b"2")], ok),
        m("multipart_text_file", [("file", "a.txt", "text/plain", b"plain text")]),
        Hostile("multipart_no_disposition",
                b"--XyZ\r\nContent-Type: image/png\r\n\r\n" + good + b"\r\n--XyZ--\r\n", M, bad),
        Hostile("multipart_unterminated", b'--XyZ\r\nContent-Disposition: form-data; '
                b'name="file"; filename="a.png"\r\n\r\n' + good, M, bad),
        Hostile("multipart_garbage", b"\x00\xff" * 100, M, bad),
        Hostile("multipart_binary_names", b'--XyZ\r\nContent-Disposition: form-data; '
                b'name="file\xff\xfe"; filename="\xff.png"\r\n\r\n' + good + b"\r\n--XyZ--\r\n",
                M, bad),
        # query strings
        Hostile("query_top_k_text", good, P, bad, "?top_k=abc"),
        Hostile("query_top_k_fraction", good, P, bad, "?top_k=2.5"),
        Hostile("query_top_k_negative", good, P, bad, "?top_k=-1"),
        Hostile("query_top_k_5000_digits", good, P, bad, "?top_k=" + "9" * 5000),
        Hostile("query_top_k_empty", good, P, bad, "?top_k="),
    ]
