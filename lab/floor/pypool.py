# ferry's Python baseline: the round trip of one task at a time through
# concurrent.futures.ProcessPoolExecutor (one worker process), echoing a bytes
# payload of each size, so ferry's per-batch cost can be set against what
# Python users pay for the same crossing on the same machine in the same run.
#
# usage: python3 pypool.py SIZES ROUNDTRIPS   (SIZES comma separated, bytes)
# prints one JSON object: {"python": "3.x.y", "sizes": {"64": [us, ...], ...}}
import json
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor


def echo(b):
    return b


def main():
    sizes = [int(s) for s in sys.argv[1].split(",")]
    n = int(sys.argv[2])
    out = {}
    with ProcessPoolExecutor(max_workers=1) as ex:
        for size in sizes:
            payload = b"x" * size
            for _ in range(min(n, 20)):  # warm up: worker started, buffers grown
                ex.submit(echo, payload).result()
            times = []
            for _ in range(n):
                t = time.perf_counter()
                ex.submit(echo, payload).result()
                times.append((time.perf_counter() - t) * 1e6)
            out[str(size)] = times
    json.dump({"python": platform.python_version(), "sizes": out}, sys.stdout)


if __name__ == "__main__":
    main()
