#!/usr/bin/python3
"""Writes the fuzzers' seed corpora under tests/fuzz/corpus/.

Run with the system Python (python3-opencv, numpy): /usr/bin/python3
tests/fuzz/make_corpus.py. The outputs are committed; rerun after changing
this script. Everything is deterministic, so a rerun changes nothing else.
"""

import json
import pathlib
import struct
import zlib

import cv2
import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
CORPUS = HERE / "corpus"
rng = np.random.default_rng(20240601)


def write(target, name, data):
    path = CORPUS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def encode(ext, image, params=()):
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok, ext
    return buf.tobytes()


def tiff(order, image):
    """An uncompressed single-strip TIFF, written by hand for either order."""
    e = "<" if order == "II" else ">"
    h, w = image.shape[:2]
    spp = 1 if image.ndim == 2 else image.shape[2]
    bits = image.dtype.itemsize * 8
    fmt = 3 if image.dtype == np.float32 else 1  # SampleFormat: float, uint
    pixels = image.astype(image.dtype.newbyteorder(e)).tobytes()
    tags = [(256, 3, w), (257, 3, h), (258, 3, bits), (259, 3, 1),
            (262, 3, 2 if spp >= 3 else 1), (273, 4, 0), (277, 3, spp),
            (278, 3, h), (279, 4, len(pixels)), (284, 3, 1), (339, 3, fmt)]
    ifd_size = 2 + 12 * len(tags) + 4
    data_offset = 8 + ifd_size
    ifd = struct.pack(e + "H", len(tags))
    for tag, typ, value in tags:
        if tag == 273:
            value = data_offset
        # Values of type SHORT sit left-justified in the 4-byte field.
        packed = (struct.pack(e + "HH", value, 0) if typ == 3 else
                  struct.pack(e + "I", value))
        ifd += struct.pack(e + "HHI", tag, typ, 1) + packed
    ifd += struct.pack(e + "I", 0)
    magic = b"II*\0" if order == "II" else b"MM\0*"
    return magic + struct.pack(e + "I", 8) + ifd + pixels


def png_with_size(png, width, height):
    """`png` with its IHDR claiming another size (CRC fixed, so that only the
    size is wrong)."""
    ihdr = bytearray(png[8:8 + 25])  # length, type, 13 bytes, CRC
    ihdr[8:16] = struct.pack(">II", width, height)
    ihdr[21:25] = struct.pack(">I", zlib.crc32(bytes(ihdr[4:21])))
    return png[:8] + bytes(ihdr) + png[33:]


def png_with_interlace(png):
    ihdr = bytearray(png[8:8 + 25])
    ihdr[20] = 1  # Adam7
    ihdr[21:25] = struct.pack(">I", zlib.crc32(bytes(ihdr[4:21])))
    return png[:8] + bytes(ihdr) + png[33:]


def jpeg_with_size(jpeg, width, height):
    sof = jpeg.index(b"\xff\xc0")
    return (jpeg[:sof + 5] + struct.pack(">HH", height, width) +
            jpeg[sof + 9:])


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def gray_png_every_filter(image, idat_parts=3):
    """A grayscale PNG written by hand: row y filtered with filter y % 5, the
    data split over several IDAT chunks, with text and pHYs chunks: what the
    server's fast PNG path decodes (and must agree with OpenCV on)."""
    depth = 8 if image.dtype == np.uint8 else 16
    rows = image.astype(">u2").tobytes() if depth == 16 else image.tobytes()
    stride, bpp = image.shape[1] * depth // 8, depth // 8
    filtered, above = bytearray(), bytes(stride)
    for y in range(image.shape[0]):
        row, f = rows[y * stride:(y + 1) * stride], y % 5
        filtered.append(f)
        for i in range(stride):
            a = row[i - bpp] if i >= bpp else 0
            c = above[i - bpp] if i >= bpp else 0
            pred = (0, a, above[i], (a + above[i]) // 2,
                    paeth(a, above[i], c))[f]
            filtered.append((row[i] - pred) & 0xFF)
        above = row

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data)))

    stream = zlib.compress(bytes(filtered), 9)
    part = len(stream) // idat_parts + 1
    header = struct.pack(">IIBBBBB", image.shape[1], image.shape[0], depth,
                         0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
            chunk(b"pHYs", struct.pack(">IIB", 2835, 2835, 1)) +
            chunk(b"tEXt", b"Software\0make_corpus.py") +
            b"".join(chunk(b"IDAT", stream[i:i + part])
                     for i in range(0, len(stream), part)) +
            chunk(b"IEND", b""))


def encoded_corpus():
    t = "image_decoder_encoded"
    gray8 = rng.integers(0, 256, (6, 5), dtype=np.uint8)
    rgb8 = rng.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    rgba8 = rng.integers(0, 256, (3, 3, 4), dtype=np.uint8)
    gray16 = rng.integers(0, 65536, (5, 4), dtype=np.uint16)
    rgb16 = rng.integers(0, 65536, (3, 4, 3), dtype=np.uint16)
    gray32f = rng.random((3, 3), dtype=np.float32)

    write(t, "png_gray8.png", encode(".png", gray8))
    write(t, "png_gray16.png", encode(".png", gray16))
    # Not from rng, so that the files before these stay as they were.
    ramp = (np.arange(12 * 11).reshape(12, 11) * 37 % 251)
    write(t, "png_gray8_every_filter.png",
          gray_png_every_filter(ramp.astype(np.uint8)))
    write(t, "png_gray16_every_filter.png",
          gray_png_every_filter((ramp * 257 + 3).astype(np.uint16)))
    write(t, "png_rgb8.png", encode(".png", rgb8))
    write(t, "png_rgb16.png", encode(".png", rgb16))
    write(t, "png_rgba8.png", encode(".png", rgba8))
    # One pixel: its Adam7 data is the same as without interlacing.
    write(t, "png_interlaced.png",
          png_with_interlace(encode(".png", gray8[:1, :1])))
    write(t, "tiff_le_gray8.tif", tiff("II", gray8))
    write(t, "tiff_be_gray16.tif", tiff("MM", gray16))
    write(t, "tiff_be_rgb8.tif", tiff("MM", rgb8))
    write(t, "tiff_le_float32.tif", tiff("II", gray32f))
    write(t, "tiff_opencv_lzw.tif", encode(".tif", rgb8))
    write(t, "jpeg_gray.jpg", encode(".jpg", gray8))
    write(t, "jpeg_rgb.jpg", encode(".jpg", rgb8))
    write(t, "jpeg_progressive.jpg",
          encode(".jpg", rgb8, (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)))
    write(t, "bmp_gray8.bmp", encode(".bmp", gray8))
    write(t, "bmp_rgb24.bmp", encode(".bmp", rgb8))
    write(t, "bmp_rgba32.bmp", encode(".bmp", rgba8))

    # Headers that lie about sizes and offsets.
    write(t, "tiff_ifd_offset_past_end.tif",
          b"II*\0" + struct.pack("<I", 0xFFFFFFF0))
    write(t, "png_ihdr_100000x100000.png",
          png_with_size(encode(".png", gray8), 100000, 100000))
    write(t, "jpeg_sof_65500x65500.jpg",
          jpeg_with_size(encode(".jpg", gray8), 65500, 65500))
    huge_tiff = bytearray(tiff("II", gray8))
    huge_tiff[18:20] = struct.pack("<H", 60000)  # ImageWidth's value
    write(t, "tiff_width_60000.tif", bytes(huge_tiff))
    huge_bmp = bytearray(encode(".bmp", rgb8))
    huge_bmp[18:26] = struct.pack("<ii", 50000, -50000)  # top-down
    write(t, "bmp_50000x50000.bmp", bytes(huge_bmp))
    # A fill byte (0xFF) before the SOF marker is legal JPEG.
    jpeg = encode(".jpg", rgb8)
    sof = jpeg.index(b"\xff\xc0")
    write(t, "jpeg_fill_byte_before_sof.jpg", jpeg[:sof] + b"\xff" + jpeg[sof:])
    write(t, "jpeg_truncated.jpg", jpeg[:len(jpeg) // 2])

    # Recognised and refused.
    write(t, "refused_webp.webp", b"RIFF\x1a\0\0\0WEBPVP8 \x0e\0\0\0" + bytes(14))
    write(t, "refused_pgm.pgm", b"P5\n2 2\n255\n\x00\x7f\x80\xff")
    write(t, "refused_hdr.hdr",
          b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 1\n\x80\x80\x80\x80")
    write(t, "refused_gif.gif", b"GIF89a\x01\0\x01\0\0\0\0;")


class Provider:
    """Writes bytes that libFuzzer's FuzzedDataProvider reads back as the
    given values: integers are taken from the end of the input, one byte at a
    time, most significant first; the remaining bytes come from the front."""

    def __init__(self):
        self.tail = []  # in consumption order

    def integral(self, value, lo, hi):
        span, value = hi - lo, value - lo
        nbytes = (span.bit_length() + 7) // 8
        self.tail += list(value.to_bytes(nbytes, "big"))
        return self

    def build(self, front=b""):
        return bytes(front) + bytes(reversed(self.tail))


def raw_input(width, height, channels, pixel_type, fit, front=b"",
              any_type=False):
    p = Provider()
    for value, small_max in ((width, 300), (height, 300), (channels, 6)):
        if value <= small_max:
            p.integral(2, 0, 3).integral(value, 0, small_max)
        else:
            p.integral(1, 0, 3).integral(value, 0, 0xFFFFFFFF)
    if any_type:
        p.integral(0, 0, 1).integral(pixel_type, -2**31, 2**31 - 1)
    else:
        p.integral(1, 0, 1).integral(pixel_type, 0, 3)
    p.integral(int(fit), 0, 1).integral(0, 0, 1)  # fit, retain_dim
    return p.build(front)


def raw_corpus():
    t = "image_decoder_raw"
    # width, height, channels, pixel type (1 uint8, 2 uint16, 3 float32), fit
    write(t, "gray8_4x3", raw_input(4, 3, 1, 1, True, bytes(range(12))))
    write(t, "rgb16_5x5", raw_input(5, 5, 3, 2, True))
    write(t, "rgba_float_2x2",
          raw_input(2, 2, 4, 3, False, np.float32(np.arange(16) / 16).tobytes()))
    write(t, "two_channels_1x1", raw_input(1, 1, 2, 1, False, b"\x01\x02"))
    write(t, "width_0xffffffff", raw_input(0xFFFFFFFF, 2, 1, 1, True))
    write(t, "65536x65536", raw_input(65536, 65536, 1, 1, True))
    write(t, "size_mismatch", raw_input(3, 3, 1, 1, False, b"\0" * 8))
    write(t, "no_pixel_type", raw_input(2, 2, 1, 0, True))
    write(t, "pixel_type_negative",
          raw_input(2, 2, 1, -1, True, any_type=True))
    write(t, "channels_5", raw_input(2, 2, 5, 1, True))
    write(t, "random_64", rng.integers(0, 256, 64, dtype=np.uint8).tobytes())


def model_config_corpus():
    t = "model_config"
    shipped = (REPO / "model/repository/unet/3/model.json").read_bytes()
    write(t, "shipped_unet_3.json", shipped)

    def variant(name, change):
        config = json.loads(shipped)
        change(config)
        write(t, name, json.dumps(config, indent=1).encode())

    def minimal(c):
        for key in ("normalization", "valid_input_sizes", "training"):
            del c[key]

    def torchscript_rgb(c):
        c["format"] = "torchscript"
        c["architecture"].update(input_channels=3, retain_dim=True,
                                 channels=[4, 8, 16])
        c["normalization"] = {"mean": [0.485, 0.456, 0.406],
                              "std": [0.229, 0.224, 0.225]}
        del c["valid_input_sizes"]

    def camel_case(c):
        c["validInputSizes"] = c.pop("valid_input_sizes")
        c["architecture"]["inputChannels"] = c["architecture"].pop(
            "input_channels")

    variant("minimal.json", minimal)
    variant("torchscript_rgb_retain_dim.json", torchscript_rgb)
    variant("camel_case_keys.json", camel_case)
    variant("wrong_valid_sizes.json",
            lambda c: c["valid_input_sizes"].update(minimum=189))
    variant("unknown_field.json", lambda c: c.update(extra=1))
    variant("std_zero.json", lambda c: c["normalization"].update(std=[0]))
    variant("mean_nan.json", lambda c: c["normalization"].update(mean=["NaN"]))
    variant("classes_mismatch.json", lambda c: c.update(class_names=["a"]))
    variant("channel_zero.json",
            lambda c: c["architecture"].update(channels=[8, 0]))
    write(t, "broken_truncated.json", shipped[:len(shipped) // 2])
    write(t, "not_an_object.json", b"[1, 2, 3]")


def zlib_inflate_corpus():
    """zlib streams of every block type, strategy, level and window, each
    after a byte that says where the fuzzer cuts it into parts."""
    t = "zlib_inflate"
    em = cv2.imread(str(REPO / "tests/data/isbi_train_0.png"),
                    cv2.IMREAD_UNCHANGED)
    samples = {
        "em_rows": em[:16].tobytes(),
        "text": b"the quick brown fox jumps over the lazy dog; " * 100,
        "noise": rng.integers(0, 256, 2048, dtype=np.uint8).tobytes(),
        "runs": b"".join(bytes([v]) * n for v, n in
                         zip(range(0, 250, 7), range(1, 300, 9))),
        "empty": b"",
    }
    strategies = {"default": zlib.Z_DEFAULT_STRATEGY, "filtered": zlib.Z_FILTERED,
                  "huffman": zlib.Z_HUFFMAN_ONLY, "rle": zlib.Z_RLE,
                  "fixed": zlib.Z_FIXED}
    for name, data in samples.items():
        for level in (0, 1, 9):
            write(t, f"{name}_level{level}.z",
                  bytes([level * 3]) + zlib.compress(data, level))
        for strategy, code in strategies.items():
            for window in (9, 15):
                z = zlib.compressobj(6, zlib.DEFLATED, window, 8, code)
                write(t, f"{name}_{strategy}_window{window}.z",
                      bytes([window - 9]) + z.compress(data) + z.flush())


def main():
    # Nothing is deleted: the DICOM corpus and the fuzzers' finds kept as
    # regressions are not written here.
    encoded_corpus()
    raw_corpus()
    model_config_corpus()
    zlib_inflate_corpus()
    for target in sorted(CORPUS.iterdir()):
        files = list(target.iterdir())
        print(f"{target.name}: {len(files)} files, "
              f"{sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
