#!/usr/bin/python3
"""Peak memory of the server on images far larger than one pass: a thin
1 x 2,000,000 image and a 16384 x 16384 one (the ISBI slice repeated), each
sent as OVERLAP_TILE with a RAW mask to a fresh server (so that its peak
resident set, VmHWM, is this request's). Prints a Markdown table.

    PYTHONPATH=build/python:client/python /usr/bin/python3 \\
        benchmark/tiled_memory.py [SERVER_BIN]
"""

import os
import socket
import subprocess
import sys
import time

import cv2
import numpy as np

import segmentation_client as sc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    ROOT, "build/bin/segmentation_server")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def measure(name, image):
    port = free_port()
    server = subprocess.Popen(
        [SERVER, f"--port={port}", "--address=127.0.0.1",
         "--metrics_address=127.0.0.1", f"--metrics_port={free_port()}",
         "--max_pixels=268435456", "--max_side=2000000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = sc.Client(f"127.0.0.1:{port}", timeout=3600)
        while True:
            try:
                info = client.info()
                break
            except sc.SegmentationError:
                time.sleep(0.5)
        ready_kib = memory_kib(server.pid, "VmRSS")
        start = time.monotonic()
        result = client.segment(image, tile=True)
        seconds = time.monotonic() - start
        peak_kib = memory_kib(server.pid, "VmHWM")
        assert result.mask.shape == image.shape[:2]
        return (f"| {name} | {image.shape[1]} x {image.shape[0]} | "
                f"{result.timing['tiles']} | "
                f"{result.timing['mean_tile_batch_size']:.2f} | "
                f"{seconds:.1f} | {ready_kib / 1024:.0f} | "
                f"{peak_kib / 1024:.0f} | "
                f"{(peak_kib - ready_kib) / 1024:.0f} | "
                f"{image.nbytes / 2**20:.0f} |")
    finally:
        server.terminate()
        server.wait()


def main():
    slice_ = cv2.imread(os.path.join(ROOT, "tests/data/isbi_train_0.png"),
                        cv2.IMREAD_GRAYSCALE)
    thin = np.resize(slice_.reshape(-1), (1, 2_000_000))
    large = np.tile(slice_, (32, 32))
    print("| image | size | tiles | tiles per pass | seconds "
          "| RSS ready MiB | peak RSS MiB | peak - ready MiB "
          "| image (uint8) MiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, image in (("thin", thin), ("large", large)):
        print(measure(name, image), flush=True)


if __name__ == "__main__":
    main()
