#!/usr/bin/env python3
"""The blog's way: time worker.embed over the same documents with
concurrent.futures.ProcessPoolExecutor, at each chunksize, in this run.

    python3 pool.py --input docs.txt [--workers N] [--chunksizes 1,10,100] [--npy ferry.npy]

Prints one JSON line per run: {"how", "workers", "chunksize", "docs",
"wall_s", "docs_per_s", "cpu_us_per_doc"}; "serial" is one process, no pool;
cpu_us_per_doc is the CPU time of this process and the pool's, per
document, which a busy machine skews less than wall time (Linux). With --npy, it
also checks the vectors equal ferry's --out .npy (numpy), so both sides
computed the same function. Standard library only (numpy for --npy).
"""
import argparse, json, os, sys, time
from concurrent.futures import ProcessPoolExecutor

from worker import embed


def read_docs(path):
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def cpu(pids):
    """CPU seconds of pids so far, from /proc/<pid>/stat (utime + stime)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            return float("nan")
    return total / os.sysconf("SC_CLK_TCK")


def timed(how, workers, chunksize, docs, run, pids=()):
    pids = [os.getpid(), *pids]
    start, cpu0 = time.perf_counter(), cpu(pids)
    vecs = run()
    wall, used = time.perf_counter() - start, cpu(pids) - cpu0
    print(json.dumps({"how": how, "workers": workers, "chunksize": chunksize, "docs": len(docs),
                      "wall_s": round(wall, 4), "docs_per_s": round(len(docs) / wall, 1),
                      "cpu_us_per_doc": round(1e6 * used / len(docs), 1)}), flush=True)
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
        workers = list(pool._processes)  # their PIDs, for the CPU time (CPython keeps them here)
        for c in [int(x) for x in a.chunksizes.split(",")]:
            vecs = timed("ProcessPoolExecutor", a.workers, c, docs, lambda: list(pool.map(embed, docs, chunksize=c)), workers)
    if a.npy:
        import numpy as np
        ours = np.frombuffer(b"".join(vecs), dtype="<f4").reshape(len(docs), -1)
        if not np.array_equal(ours, np.load(a.npy)):
            sys.exit("pool.py: vectors differ from " + a.npy)
        print(json.dumps({"identical_to": a.npy}), flush=True)


if __name__ == "__main__":
    main()
