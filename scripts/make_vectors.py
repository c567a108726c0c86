"""Writes the envelope test vectors in tests/vectors/ (docs/format.md).

Each case is NAME.cse (the file) and NAME.json (its expected outcome and how
it was made). Every random input comes from a fixed seed, so the same
library versions give the same bytes: `--check DIR` regenerates into DIR so
a test can compare.

    python scripts/make_vectors.py            # rewrite tests/vectors/
    python scripts/make_vectors.py --out DIR  # write elsewhere
"""

import argparse
import hashlib
import io
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from coreseal.envelope import constants as c  # noqa: E402
from coreseal.envelope.seal import seal_stream  # noqa: E402
from coreseal.secret import Secret  # noqa: E402
from coreseal.wrapkey import KIND_HOST, WrappingKey  # noqa: E402

SHIFT = 16
SEG = 1 << SHIFT
KEY_ID = "coreseal:native/00000000/test-vectors"
# Published on purpose: these keys open only the test vectors.
KEY = hashlib.sha256(b"coreseal test vector key").digest()
OTHER_KEY = hashlib.sha256(b"coreseal test vector other key").digest()


class Stream:
    """A deterministic byte source: SHA-256 in counter mode over a label."""

    def __init__(self, label: str):
        self.label, self.counter = label.encode(), 0

    def __call__(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            out += hashlib.sha256(self.label + struct.pack(">Q", self.counter)).digest()
            self.counter += 1
        return bytes(out[:n])


def plaintext(size: int) -> bytes:
    """Like a core: zeros, text and random bytes, in segment-sized stripes."""
    rnd, out, i = Stream(f"plaintext {size}"), bytearray(), 0
    while len(out) < size:
        kind = i % 3
        chunk = min(SEG, size - len(out))
        if kind == 0:
            out += bytes(chunk)
        elif kind == 1:
            out += (b"CORESEAL vector text line %d\n" % i * 4000)[:chunk]
        else:
            out += rnd(chunk)
        i += 1
    return bytes(out)


def seal(data: bytes, prefix: bytes = b"", label: str = "") -> bytes:
    key = WrappingKey(KEY_ID, KIND_HOST, Secret(KEY))
    dst = io.BytesIO()
    seal_stream(
        io.BytesIO(prefix + data),
        dst,
        [key],
        prefix_length=len(prefix),
        segment_shift=SHIFT,
        dump_type=c.DUMP_PROCESS,
        metadata={"name": "vector", "source": label or "make_vectors"},
        rng=Stream(f"rng {label}"),
    )
    return dst.getvalue()


def layout(blob: bytes, offset: int = 0) -> dict:
    """Where the header, key entry and records are, for aimed corruption."""
    hlen = struct.unpack_from(">I", blob, offset + 12)[0]
    key_entry = offset + 92
    id_len = blob[key_entry + 2]
    wrapped = key_entry + 3 + id_len + 16 + 1
    records, pos = [], offset + hlen
    while pos < len(blob):
        (n,) = struct.unpack_from(">I", blob, pos)
        records.append((pos, 4 + n))
        pos += 4 + n
    return {
        "header_end": offset + hlen,
        "wrapped": wrapped,
        "fingerprint": key_entry + 3 + id_len,
        "records": records,
        "metadata_byte": offset + hlen - 32 - 5,
    }


def nested_metadata(blob: bytes) -> bytes:
    """The header rebuilt around metadata of deeply nested arrays."""
    hlen = struct.unpack_from(">I", blob, 12)[0]
    head, rest = blob[:hlen], blob[hlen:]
    mlen = len(b'{"name":"vector","source":"nested"}')
    meta = b"[" * 8000 + b"]" * 8000
    body = head[: hlen - 32 - mlen - 2] + struct.pack(">H", len(meta)) + meta
    body += head[hlen - 32 :]
    out = bytearray(body)
    struct.pack_into(">I", out, 12, len(out))
    return bytes(out) + rest


def flip(blob: bytes, pos: int) -> bytes:
    b = bytearray(blob)
    b[pos] ^= 0x01
    return bytes(b)


def cases():
    good = [
        ("good-empty", 0, 0),
        ("good-1-byte", 1, 0),
        ("good-segment-minus-1", SEG - 1, 0),
        ("good-one-segment", SEG, 0),
        ("good-segment-plus-1", SEG + 1, 0),
        ("good-several", 4 * SEG + 1234, 0),
        ("good-prefix-1-byte", 1, 4096),
        ("good-prefix-several", 3 * SEG + 7, 4096),
        ("good-prefix-empty", 0, 4096),
    ]
    for name, size, plen in good:
        data = plaintext(size)
        prefix = Stream(f"prefix {name}")(plen)
        yield (
            name,
            seal(data, prefix, name),
            {
                "expected": "ok",
                "offset": plen,
                "plaintext_size": size + plen,
                "plaintext_sha256": hashlib.sha256(prefix + data).hexdigest(),
                "description": f"{size} bytes, {SEG}-byte segments, {plen}-byte prefix",
            },
        )

    data = plaintext(4 * SEG + 1234)  # five segments
    base = seal(data, label="several")
    lay = layout(base)
    recs = lay["records"]

    def bad(name, blob, expected, description, offset=0):
        return (
            name,
            blob,
            {"expected": expected, "offset": offset, "description": description},
        )

    for k in range(len(recs)):
        yield bad(
            f"cut-after-{k}-segments",
            base[: recs[k][0]],
            "truncated",
            f"cut at the boundary before segment {k}",
        )
    mid = recs[2][0] + recs[2][1] // 2
    yield bad("cut-inside-segment", base[:mid], "truncated", "cut inside segment 2")
    yield bad(
        "cut-inside-record-length",
        base[: recs[1][0] + 2],
        "truncated",
        "cut inside the length field of segment 1",
    )
    yield bad(
        "header-cut-short",
        base[: lay["header_end"] - 40],
        "truncated",
        "header cut 40 bytes before its end",
    )
    yield bad(
        "header-cut-preamble",
        base[:12],
        "truncated",
        "only 12 bytes: magic and part of the preamble",
    )
    yield bad(
        "header-bitflip-metadata",
        flip(base, lay["metadata_byte"]),
        "integrity",
        "one bit flipped in the metadata (still canonical JSON)",
    )
    yield bad(
        "header-bitflip-size",
        flip(base, 79),
        "malformed",
        "one bit flipped in dump_size: sizes then disagree with the flags",
    )
    yield bad(
        "header-bitflip-prefix-digest",
        flip(base, 45),
        "integrity",
        "one bit flipped in the plain prefix digest",
    )
    yield bad(
        "header-bitflip-salt",
        flip(base, 20),
        "integrity",
        "one bit flipped in the salt",
    )
    yield bad(
        "header-bitflip-mac",
        flip(base, lay["header_end"] - 1),
        "integrity",
        "one bit flipped in the header MAC",
    )
    yield bad(
        "wrapped-key-bitflip",
        flip(base, lay["wrapped"] + 5),
        "integrity",
        "one bit flipped in the wrapped data key",
    )
    yield bad(
        "fingerprint-bitflip",
        flip(base, lay["fingerprint"]),
        "integrity",
        "one bit flipped in the key fingerprint",
    )
    yield bad(
        "middle-segment-bitflip",
        flip(base, recs[2][0] + 30),
        "integrity",
        "one bit flipped in segment 2 of 5",
    )
    yield bad(
        "last-segment-bitflip",
        flip(base, recs[-1][0] + recs[-1][1] - 3),
        "integrity",
        "one bit flipped in the tag of the last segment",
    )
    seg = [base[p : p + n] for p, n in recs]
    head = base[: lay["header_end"]]
    yield bad(
        "segments-swapped",
        head + seg[0] + seg[2] + seg[1] + b"".join(seg[3:]),
        "integrity",
        "segments 1 and 2 swapped",
    )
    yield bad(
        "segment-repeated",
        head + seg[0] + seg[1] + seg[1] + b"".join(seg[2:]),
        "integrity",
        "segment 1 repeated",
    )
    yield bad(
        "segment-dropped",
        head + seg[0] + b"".join(seg[2:]),
        "integrity",
        "segment 1 dropped",
    )
    yield bad(
        "bytes-appended",
        base + b"\0\0\0\x20" + b"x" * 32,
        "integrity",
        "a record-sized tail appended after the last segment",
    )
    yield bad("byte-appended", base + b"x", "integrity", "one byte appended")
    nested = seal(plaintext(10), label="nested")
    yield bad(
        "metadata-nested-deeply",
        nested_metadata(nested),
        "malformed",
        "metadata of 8000 nested arrays (a parser must not recurse)",
    )
    yield bad(
        "version-2", base[:8] + b"\x02" + base[9:], "malformed", "version byte set to 2"
    )
    yield bad(
        "not-an-envelope",
        b"ELF? no: just some text\n" * 20,
        "not-an-envelope",
        "a text file",
    )
    yield bad("empty-file", b"", "not-an-envelope", "zero bytes")
    name, blob, meta = (
        "wrong-key",
        base,
        {
            "expected": "key-mismatch",
            "offset": 0,
            "key": OTHER_KEY.hex(),
            "description": "a different key under the same key ID",
        },
    )
    yield name, blob, meta
    pfx = seal(plaintext(SEG + 5), Stream("prefix tamper")(4096), "prefix-tamper")
    yield bad(
        "prefix-bitflip",
        flip(pfx, 100),
        "integrity",
        "one bit flipped in the 4096-byte plain prefix",
        offset=4096,
    )
    yield bad(
        "prefix-opened-at-0",
        pfx,
        "not-an-envelope",
        "a file with a 4096-byte plain prefix opened at offset 0",
    )


def write(out_dir: str) -> int:
    if os.path.isdir(out_dir):
        for n in os.listdir(out_dir):
            if n.endswith((".cse", ".json")):
                os.unlink(os.path.join(out_dir, n))
    os.makedirs(out_dir, exist_ok=True)
    count = 0
    for name, blob, meta in cases():
        meta = {
            "name": name,
            "key_id": KEY_ID,
            "key": KEY.hex(),
            "segment_size": SEG,
            **meta,
        }
        with open(os.path.join(out_dir, name + ".cse"), "wb") as f:
            f.write(blob)
        with open(os.path.join(out_dir, name + ".json"), "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
            f.write("\n")
        count += 1
    import zstandard

    # zstd's output may change between versions; the reproducibility test
    # compares bytes only under the version the vectors were made with.
    with open(os.path.join(out_dir, "made-with.json"), "w") as f:
        json.dump(
            {"zstandard": zstandard.__version__, "libzstd": zstandard.ZSTD_VERSION},
            f,
            sort_keys=True,
        )
        f.write("\n")
    return count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p.add_argument("--out", default=os.path.join(here, "tests", "vectors"))
    args = p.parse_args()
    n = write(args.out)
    print(f"coreseal: wrote {n} vectors to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
