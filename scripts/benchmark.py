"""Speed and memory of the four methods, for both backbones at 224x224, on this machine.

    python scripts/benchmark.py [--backbones efficientnet_lite0 resnet50] [--batch 32]

Each measurement runs in its own process, so its peak memory is its own: the peak resident
memory *above* what the process held just before the measured call (model, images and compiled
functions already in place, after one warm-up call). Fast jobs are timed 5 times (median);
Score-CAM once, on one image, followed in the same process by the bare forward passes it makes.
Prints ms per image and peak memory, and checks the targets:

* Grad-CAM and Grad-CAM++ cost at most 1.5x a forward pass of the same batch;
* full Score-CAM costs at most 1.3x its K masked forward passes, timed in the same process;
* EfficientNet-Lite0's forward pass with camcore's fused batch norm
  (``backbones.FusedBatchNormalization``) costs at most 0.9x the same pass with Keras's own
  batch-norm call (the same weights);
* memory is flat in the number of images: each method's peak explaining 1,024 images exceeds
  its peak explaining 64 by at most 64 MB of allocator noise (the maps are computed a batch at a
  time; the result's heatmaps, 200 KB per image, are made only when read, so not counted);
* Score-CAM's peak does not grow with the number of channels K it scores (K vs K/8, same noise
  allowance; materialising the masked images, as tf-keras-vis does, would add about 1 GB).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from camcore.book import PeakMemory

MEMORY_NOISE_MB = 64  # allocator noise allowed when checking that memory does not grow
FEW, MANY = 64, 1024  # images, for the memory-in-N check
SCORE_CAM_MAX_N = 8  # channels per image when Score-CAM runs on MANY images (time, not memory)


def _images(n):
    """``n`` real test images (uint8) when the dataset is reachable, else uniform noise."""
    import camcore

    try:
        test = camcore.load_split("test", per_class=-(-n // 6), progress=False)
        images = np.resize(test.images, (n, *test.images.shape[1:]))  # repeats if too few
        return images, "test images"
    except FileNotFoundError:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8), "noise"


def child(backbone, job, batch, max_n, n):
    """One measurement; prints a JSON line."""
    import camcore

    weights = "imagenet"
    if job == "forward, Keras batch norm":  # the same model, Keras's own batch-norm call
        import keras

        from camcore import backbones

        backbones.FusedBatchNormalization.call = keras.layers.BatchNormalization.call
    try:
        model = camcore.build_classifier(backbone, camcore.CLASS_NAMES, weights=weights)
    except RuntimeError:  # ResNet50 offline: random weights cost the same time
        weights = None
        model = camcore.build_classifier(backbone, camcore.CLASS_NAMES, weights=weights)
    channels = model.get_layer(backbone).output.shape[-1]
    x, source = _images(n)

    def run(images):
        if job.startswith("forward"):
            camcore.logits_and_probabilities(model, images, batch_size=batch)
        elif job == "Score-CAM":
            camcore.score_cam(model, images, max_n=max_n, batch_size=batch, progress=False)
        else:
            camcore.METHODS[job](model, images, batch_size=batch)

    if job == "Score-CAM":  # warm up: trace every compiled function once
        camcore.score_cam(model, x[:1], max_n=batch, batch_size=batch, progress=False)
    else:
        run(x[:batch])
    repeats = 1 if job == "Score-CAM" else 5
    times, peaks = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        with PeakMemory() as memory:
            run(x)
        times.append(time.perf_counter() - start)
        peaks.append(memory)
    result = {"backbone": backbone, "job": job, "max_n": max_n, "images": n,
              "channels": channels, "seconds": float(np.median(times)),
              "peak_extra_mb": max(m.extra for m in peaks),
              "peak_rss_mb": max(m.peak for m in peaks), "weights": weights, "inputs": source}
    if job == "Score-CAM" and max_n is None:  # the masked forward passes alone, same process
        a = camcore.split_model(model).features(x[:1].astype(np.float32)).numpy()
        k = int((a.var(axis=(1, 2)) > 0).sum())  # constant channels are skipped by Score-CAM
        chunk = np.repeat(x[:1], batch, axis=0).astype(np.float32) * 0.5
        start = time.perf_counter()
        for _ in range(-(-k * n // batch)):
            camcore.logits_and_probabilities(model, chunk, batch_size=batch)
        result |= {"masked_passes": k, "masked_seconds": time.perf_counter() - start}
    result["ms_per_image"] = 1000 * result["seconds"] / n
    print(json.dumps(result))


def measure(backbone, job, batch, max_n=None, n=None):
    n = n or (1 if job == "Score-CAM" else batch)
    cmd = [sys.executable, __file__, "--child", backbone, job, "--batch", str(batch),
           "--images", str(n)]
    if max_n is not None:
        cmd += ["--max-n", str(max_n)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode or not lines:
        raise RuntimeError(f"{backbone} {job} failed:\n{out.stderr[-3000:]}")
    result = json.loads(lines[-1])
    label = f"{job}" + ("" if max_n is None else f" max_n={max_n}") + f", {n} image(s)"
    print(f"  {label:<32} {result['ms_per_image']:10.1f} ms/image  "
          f"peak +{result['peak_extra_mb']:6.1f} MB (RSS {result['peak_rss_mb']:6.0f} MB)  "
          f"{result['seconds']:.2f} s", flush=True)
    if "masked_seconds" in result:
        print(f"  {'its masked passes':<32} {1000 * result['masked_seconds']:10.1f} ms/image  "
              f"({result['masked_passes']} of {result['channels']} channels are not constant: "
              "that many forward passes of a masked image, same process)")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "resnet50"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--child", nargs=2, metavar=("BACKBONE", "JOB"))
    parser.add_argument("--max-n", type=int, default=None)
    parser.add_argument("--images", type=int, default=None)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.batch, args.max_n, args.images)

    print(f"CPU cores: {os.cpu_count()}, batch {args.batch}, input 224x224")
    verdicts = []
    for backbone in args.backbones:
        print(f"\n{backbone}: time")
        r = {job: measure(backbone, job, args.batch)
             for job in ["forward", "CAM", "Grad-CAM", "Grad-CAM++", "Score-CAM"]}
        if r["forward"]["weights"] is None:
            print("  (ImageNet weights unavailable offline: random weights, same cost)")
        fwd = r["forward"]["ms_per_image"]
        for m in ("Grad-CAM", "Grad-CAM++"):
            verdicts.append((f"{backbone} {m} / forward pass", r[m]["ms_per_image"] / fwd, 1.5))
        ratio = r["Score-CAM"]["seconds"] / r["Score-CAM"]["masked_seconds"]
        verdicts.append((f"{backbone} Score-CAM / its masked forward passes", ratio, 1.3))
        if backbone == "efficientnet_lite0":
            keras_bn = measure(backbone, "forward, Keras batch norm", args.batch)
            verdicts.append((f"{backbone} forward, fused / Keras batch norm",
                             fwd / keras_bn["ms_per_image"], 0.9))

        print(f"{backbone}: memory, {FEW} vs {MANY} images")
        for job in ["CAM", "Grad-CAM", "Grad-CAM++", "Score-CAM"]:
            max_n = SCORE_CAM_MAX_N if job == "Score-CAM" else None
            few, many = (measure(backbone, job, args.batch, max_n, n)["peak_extra_mb"]
                         for n in (FEW, MANY))
            verdicts.append((f"{backbone} {job} peak growth {FEW} -> {MANY} images (MB)",
                             many - few, MEMORY_NOISE_MB))

        k = r["forward"]["channels"]
        print(f"{backbone}: Score-CAM memory in the number of channels scored")
        memory = {m: measure(backbone, "Score-CAM", args.batch, max_n=m)["peak_rss_mb"]
                  for m in (k // 8, k // 2)}
        memory[k] = r["Score-CAM"]["peak_rss_mb"]
        materialised = (k - k // 8) * 224 * 224 * 3 * 4 / 2**20
        print(f"  Score-CAM peak RSS scoring K={k // 8}, {k // 2}, {k} channels: "
              + ", ".join(f"{v:.0f} MB" for v in memory.values())
              + f"; materialising the other {k - k // 8} masked images would add "
              f"{materialised:.0f} MB")
        verdicts.append((f"{backbone} Score-CAM peak RSS growth K={k // 8} -> {k} (MB)",
                         memory[k] - memory[k // 8], MEMORY_NOISE_MB))

    print("\ntargets")
    for label, value, limit in verdicts:
        print(f"  {label:<64} {value:7.2f} (<= {limit}: {'met' if value <= limit else 'MISSED'})")


if __name__ == "__main__":
    main()
