"""Speed and memory of the four methods, for both backbones at 224x224, on this machine.

    python scripts/benchmark.py [--backbones efficientnet_lite0 resnet50] [--batch 32]

Each measurement runs in its own process, so its peak memory is its own: the peak resident
memory *above* what the process held just before the measured call (model, images and compiled
functions already in place, after one warm-up call). Fast jobs are timed 5 times (median);
Score-CAM once, on one image, followed in the same process by the bare forward passes it makes.
Prints ms per image and checks the targets:

* Grad-CAM and Grad-CAM++ cost at most 1.5x a forward pass of the same batch;
* full Score-CAM costs at most 1.3x its K masked forward passes, timed in the same process;
* Score-CAM's peak memory does not grow with the number of channels K it scores: its peak
  resident memory scoring K channels exceeds the one scoring K/8 by at most 64 MB of allocator
  noise (materialising the masked images, as tf-keras-vis does, would add about 1 GB).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time

import numpy as np


MEMORY_NOISE_MB = 64  # allocator noise allowed when checking that memory does not grow with K


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class PeakMemory:
    """Peak resident memory (MB) above the level at entry, sampled every 2 ms."""

    def __enter__(self):
        self.base = self.peak = _rss_mb()
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self.peak = max(self.peak, _rss_mb())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())
        self.extra = self.peak - self.base


def _images(n):
    """Real test images when the dataset is reachable, else uniform noise (same cost)."""
    import camcore

    try:
        return camcore.load_split("test", per_class=-(-n // 6)).images[:n].astype(np.float32), "test images"
    except FileNotFoundError:
        return np.random.default_rng(0).uniform(0, 255, (n, 224, 224, 3)).astype(np.float32), "noise"


def child(backbone, job, batch, max_n):
    """One measurement; prints a JSON line."""
    import tensorflow as tf

    import camcore
    from camcore.methods import _compiled
    from camcore.model_split import split_model

    weights = "imagenet"
    try:
        model = camcore.build_classifier(backbone, weights=weights)
    except RuntimeError:  # ResNet50 offline: random weights cost the same time
        weights = None
        model = camcore.build_classifier(backbone, weights=weights)
    split = split_model(model)
    n = 1 if job == "score" else batch
    x, source = _images(n)
    channels = split.feature_parts[-1].outputs[0].shape[-1]
    forward = _compiled(split, "features_and_logits")

    def masked_passes():  # the masked forward passes Score-CAM makes, on their own
        a = forward(tf.constant(x))[0].numpy()
        k = int((a.var(axis=(1, 2)) > 0).sum())  # constant channels are skipped by Score-CAM
        result["masked_passes"] = k
        chunk = tf.constant(np.repeat(x[:1], batch, axis=0) * 0.5)
        for _ in range(-(-k * n // batch)):
            forward(chunk)[1].numpy()

    result = {}

    def run():
        if job == "forward":
            forward(tf.constant(x))[1].numpy()
        elif job == "score":
            camcore.score_cam(model, x, max_n=max_n, batch_size=batch, progress=False)
        else:
            camcore.METHODS[job](model, x, batch_size=batch)

    # warm up: trace every compiled function once
    forward(tf.constant(x[:batch]))
    if job == "score":
        camcore.score_cam(model, x[:1], max_n=batch, batch_size=batch, progress=False)
    elif job != "forward":
        camcore.METHODS[job](model, x, batch_size=batch)
    repeats = 1 if job == "score" else 5
    times, peaks = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        with PeakMemory() as memory:
            run()
        times.append(time.perf_counter() - start)
        peaks.append(memory)
    result |= {"backbone": backbone, "job": job, "max_n": max_n, "images": n, "channels": channels,
              "seconds": float(np.median(times)), "peak_extra_mb": max(m.extra for m in peaks),
              "peak_rss_mb": max(m.peak for m in peaks), "weights": weights, "inputs": source}
    if job == "score" and max_n is None:
        start = time.perf_counter()
        masked_passes()
        result["masked_seconds"] = time.perf_counter() - start
    result["ms_per_image"] = 1000 * result["seconds"] / n
    print(json.dumps(result))


def measure(backbone, job, batch, max_n=None):
    cmd = [sys.executable, __file__, "--child", backbone, job, "--batch", str(batch)]
    if max_n is not None:
        cmd += ["--max-n", str(max_n)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"{backbone} {job} failed:\n{out.stderr[-3000:]}")
    result = json.loads(lines[-1])
    label = job if max_n is None else f"{job} max_n={max_n}"
    print(f"  {label:<22} {result['ms_per_image']:10.1f} ms/image  "
          f"peak +{result['peak_extra_mb']:6.1f} MB (RSS {result['peak_rss_mb']:6.0f} MB)  "
          f"{result['seconds']:.2f} s for {result['images']} image(s)", flush=True)
    if "masked_seconds" in result:
        print(f"  {'its masked passes':<22} {1000 * result['masked_seconds']:10.1f} ms/image  "
              f"({result['masked_passes']} of {result['channels']} channels are not constant: "
              "that many forward passes of a masked image, same process)")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "resnet50"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--child", nargs=2, metavar=("BACKBONE", "JOB"))
    parser.add_argument("--max-n", type=int, default=None)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.batch, args.max_n)

    print(f"CPU cores: {os.cpu_count()}, batch {args.batch}, input 224x224")
    verdicts = []
    for backbone in args.backbones:
        print(f"\n{backbone}")
        r = {job: measure(backbone, job, args.batch)
             for job in ["forward", "CAM", "Grad-CAM", "Grad-CAM++"]}
        k = r["forward"]["channels"]
        r["score"] = measure(backbone, "score", args.batch)
        memory = {m: measure(backbone, "score", args.batch, max_n=m)["peak_rss_mb"]
                  for m in (k // 8, k // 2)}
        memory[k] = r["score"]["peak_rss_mb"]
        if r["forward"]["weights"] is None:
            print("  (ImageNet weights unavailable offline: random weights, same cost)")
        fwd = r["forward"]["ms_per_image"]
        for m in ("Grad-CAM", "Grad-CAM++"):
            ratio = r[m]["ms_per_image"] / fwd
            verdicts.append((f"{backbone} {m} / forward pass", ratio, 1.5))
        ratio = r["score"]["seconds"] / r["score"]["masked_seconds"]
        verdicts.append((f"{backbone} Score-CAM / its masked forward passes", ratio, 1.3))
        growth = memory[k] - memory[k // 8]
        materialised = (k - k // 8) * 224 * 224 * 3 * 4 / 2**20
        print(f"  Score-CAM peak RSS scoring K={k // 8}, {k // 2}, {k} channels: "
              + ", ".join(f"{v:.0f} MB" for v in memory.values())
              + f"; materialising the other {k - k // 8} masked images would add "
              f"{materialised:.0f} MB")
        verdicts.append((f"{backbone} Score-CAM peak RSS growth K={k // 8} -> {k} (MB)", growth,
                         MEMORY_NOISE_MB))

    print("\ntargets")
    for label, value, limit in verdicts:
        print(f"  {label:<60} {value:6.2f} (<= {limit}: {'met' if value <= limit else 'MISSED'})")


if __name__ == "__main__":
    main()
