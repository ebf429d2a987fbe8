#!/usr/bin/env python3
"""The blog's way: time worker.embed over the same documents with
concurrent.futures.ProcessPoolExecutor, at each chunksize, in this run.

    python3 pool.py --input docs.txt [--workers N] [--chunksizes 1,10,100] [--npy ferry.npy]

Prints one JSON line per run: {"how", "workers", "chunksize", "docs",
"wall_s", "docs_per_s"}; "serial" is one process, no pool. With --npy, it
also checks the vectors equal ferry's --out .npy (numpy), so both sides
computed the same function. Standard library only (numpy for --npy).
"""
import argparse, json, os, sys, time
from concurrent.futures import ProcessPoolExecutor

from worker import embed


def read_docs(path):
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def timed(how, workers, chunksize, docs, run):
    start = time.perf_counter()
    vecs = run()
    wall = time.perf_counter() - start
    print(json.dumps({"how": how, "workers": workers, "chunksize": chunksize, "docs": len(docs),
                      "wall_s": round(wall, 4), "docs_per_s": round(len(docs) / wall, 1)}), flush=True)
    return vecs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    ap.add_argument("--chunksizes", default="1,10,100")
    ap.add_argument("--serial", action="store_true", help="also time one process without a pool")
    ap.add_argument("--npy", help="ferry's --out .npy of the same documents, to compare")
    a = ap.parse_args()
    docs = read_docs(a.input)
    vecs = None
    if a.serial:
        vecs = timed("serial", 1, 0, docs, lambda: [embed(d) for d in docs])
    with ProcessPoolExecutor(max_workers=a.workers) as pool:
        list(pool.map(embed, docs[: 4 * a.workers]))  # start the workers outside the timings
        for c in [int(x) for x in a.chunksizes.split(",")]:
            vecs = timed("ProcessPoolExecutor", a.workers, c, docs, lambda: list(pool.map(embed, docs, chunksize=c)))
    if a.npy:
        import numpy as np
        ours = np.frombuffer(b"".join(vecs), dtype="<f4").reshape(len(docs), -1)
        if not np.array_equal(ours, np.load(a.npy)):
            sys.exit("pool.py: vectors differ from " + a.npy)
        print(json.dumps({"identical_to": a.npy}), flush=True)


if __name__ == "__main__":
    main()
