#!/usr/bin/env python3
"""A ferry exec worker in Python: a pure-Python feature-hashing embedding.

ferry runs it with `--workload exec --exec 'python3 worker.py'` and sends
each batch as a frame on stdin: a 4-byte big-endian length, then the batch
in msgpack; it answers each with [compute_ns, result] on stdout
(docs/protocol.md). Needs the standard library and msgpack (Debian:
python3-msgpack). Params: --param dim=N (default 384).
"""
import re, struct, sys, time, zlib
from array import array

import msgpack

WORD = re.compile(r"\w+")


def embed(text, dim=384):
    """Word unigrams, bigrams and character 3-grams, each hashed (crc32) to
    a signed slot of a dim-wide vector, L2-normalised; float32 bytes."""
    vec = [0.0] * dim
    words = WORD.findall(text.lower())
    feats = words + [a + " " + b for a, b in zip(words, words[1:])]
    for w in words:
        w = "#" + w + "#"
        feats += [w[i:i + 3] for i in range(len(w) - 2)]
    for f in feats:
        h = zlib.crc32(f.encode("utf-8", "surrogateescape"))
        vec[h % dim] += 1.0 if h & 0x80000000 else -1.0
    norm = sum(x * x for x in vec) ** 0.5 or 1.0
    return array("f", [x / norm for x in vec]).tobytes()


def main():
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    little = sys.byteorder == "little"
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return  # stdin ended: ferry is done with us
        (n,) = struct.unpack(">I", head)
        batch = msgpack.unpackb(stdin.read(n), raw=False, unicode_errors="surrogateescape")
        bid, attempt, token, params, docs = batch[0], batch[1], batch[2], batch[4], batch[6]
        dim = int((params[6] or {}).get("dim", 384))
        start = time.perf_counter_ns()
        rows, errs = [], []
        for i, doc in enumerate(docs):
            try:
                rows.append(embed(doc, dim))
            except Exception as e:  # one bad document fails alone
                rows.append(bytes(4 * dim))
                errs.append([i, repr(e)])
        vecs = b"".join(rows)
        if not little:
            a = array("f", vecs); a.byteswap(); vecs = a.tobytes()
        result = [bid, attempt, token, dim, vecs, b"", 0, b"", errs]
        out = msgpack.packb([time.perf_counter_ns() - start, result], use_bin_type=True)
        stdout.write(struct.pack(">I", len(out)))
        stdout.write(out)  # apart: no copy of the vectors to join them
        stdout.flush()


if __name__ == "__main__":
    main()
