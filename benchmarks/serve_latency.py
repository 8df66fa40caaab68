"""Latency of `gencli serve` as a browser sees it: milliseconds per request, median and 90th percentile.

Starts `gencli serve` as a subprocess on 127.0.0.1 (a free port, an empty working directory, so the
bundled models), warms each endpoint up, then sends a bounded number of requests one after another over
one keep-alive connection, and prints the figures beside the targets of the serve issue:
a VAE point under 20 ms, a StyleGAN image under 150 ms, a 512 x 512 translation under 3 s (medians).
Last, it decodes latent points while a translation runs, to show that a slow request does not hold
up the latent view. It prints the CPU it ran on and the load average, since other work on the machine
shows in every figure.

    python benchmarks/serve_latency.py [--requests 100] [--translations 5] [--threads N] [--device cpu]
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POINTER_MS = 16  # pointer events come about once per frame
TARGETS_MS = {"vae point": 20, "stylegan image": 150, "translate 512x512": 3000}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_description() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import torch

    return f"{name}, {cores} cores usable, torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()})"


class Client:
    def __init__(self, port: int):
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def request(self, method: str, url: str, body: bytes | None = None) -> float:
        """Seconds for one request; fails on any status but 200."""
        started = time.perf_counter()
        self.connection.request(method, url, body=body)
        response = self.connection.getresponse()
        data = response.read()
        seconds = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"{method} {url}: {response.status} {data[:200]!r}")
        return seconds


def timed(client: Client, urls: list[str], method: str = "GET", body: bytes | None = None) -> list[float]:
    return [client.request(method, url, body) * 1000 for url in urls]


def summary(name: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    target = TARGETS_MS.get(name)
    verdict = "" if target is None else f"  target < {target} ms: {'met' if statistics.median(ms) < target else 'MISSED'}"
    return f"{name:<28} {len(ms):>4}  {statistics.median(ms):>9.1f}  {p90:>9.1f}{verdict}"


def test_image(size: int) -> bytes:
    from PIL import Image

    image = Image.open(REPO / "assets" / "cyclegan" / "photo_1.jpg").convert("RGB").resize((size, size), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100, help="requests per fast endpoint")
    parser.add_argument("--translations", type=int, default=5, help="512 x 512 translations")
    parser.add_argument("--threads", type=int, default=None, help="the server's --threads (default: its own)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    port = free_port()
    command = [sys.executable, "-m", "gencli", "serve", "--port", str(port), "--device", args.device]
    if args.threads:
        command += ["--threads", str(args.threads)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory(prefix="gencli-serve-bench-") as workdir:
        server = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
        try:
            run_benchmark(port, args)
        finally:
            server.terminate()
            server.wait(20)


def run_benchmark(port: int, args) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            Client(port).request("GET", "/api/models")
            break
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise SystemExit("the server did not answer within 60 s")
            time.sleep(0.2)

    rng = random.Random(0)
    n = args.requests
    points = [(round(rng.uniform(-3, 3), 3), round(rng.uniform(-3, 3), 3)) for _ in range(n)]
    endpoints = {
        "vae point": [f"/api/vae/bundled:vae/decode?x={x}&y={y}" for x, y in points],
        "cvae point": [f"/api/vae/bundled:cvae/decode?x={x}&y={y}&label={i % 10}" for i, (x, y) in enumerate(points)],
        "stylegan image": [f"/api/stylegan/bundled:stylegan/image?seed={s}&truncation=0.7" for s in range(n)],
        "stylegan style mix": [f"/api/stylegan/bundled:stylegan/mix?row={s}&col={s + 1}&cutoff=4" for s in range(n // 4 or 1)],
        "stylegan interpolation (8)": [f"/api/stylegan/bundled:stylegan/interpolate?start={s}&end={s + 1}&steps=8"
                                       for s in range(n // 4 or 1)],
        "vae latent grid (8x8)": ["/api/vae/bundled:vae/grid?steps=8"] * (n // 4 or 1),
    }
    client = Client(port)
    for urls in endpoints.values():  # load each model, import what the first request imports
        timed(client, urls[:3])
    image = test_image(512)
    translate = "/api/cyclegan/bundled:monet2photo/translate?direction=a2b&filename=photo_512.png"
    client.request("POST", translate, image)

    load_before = os.getloadavg()
    print(f"CPU: {cpu_description()}")
    print(f"load average before: {load_before[0]:.2f} (1 min); the server's torch threads: "
          f"{args.threads or 'its default (all cores but one)'}")
    print(f"{'endpoint':<28} {'n':>4}  {'median ms':>9}  {'p90 ms':>9}")
    results = {name: timed(client, urls) for name, urls in endpoints.items()}
    results["translate 512x512"] = timed(client, [translate] * args.translations, "POST", image)
    results["translate 512x512 bf16"] = timed(client, [translate + "&precision=bf16"] * args.translations, "POST", image)
    for name, ms in results.items():
        print(summary(name, ms))

    # Latent points while a translation runs on another connection, at the pace of a moving pointer
    # (one request every POINTER_MS at most; the page keeps one request in flight).
    during: list[float] = []
    translation_ms: list[float] = []
    worker = threading.Thread(target=lambda: translation_ms.extend(timed(Client(port), [translate], "POST", image)))
    worker.start()
    time.sleep(0.1)
    i = 0
    while worker.is_alive():
        x, y = points[i % len(points)]
        seconds = client.request("GET", f"/api/vae/bundled:vae/decode?x={x}&y={y}")
        during.append(seconds * 1000)
        time.sleep(max(0.0, POINTER_MS / 1000 - seconds))
        i += 1
    worker.join()
    print(summary("vae point during translation", during) + f"  (the translation took {translation_ms[0]:.0f} ms)")
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
