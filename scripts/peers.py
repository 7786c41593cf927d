"""camcore against peer implementations: the same model, images and classes, explained by both.

    CAMCORE_DATA=/path/to/intel-image-classification python scripts/peers.py \
        [--images 24] [--score-images 4] [--repeats 5]
    make peers      # installs the optional extra camcore[peers] (tf-keras-vis 0.8.7), then this

The model is the book's fine-tuned classifier (``camcore.book.classifier``, full mode), explained
at ``camcore.default_target_layer`` (efficientnet_lite0/top_activation, 7x7x1280) for the class it
predicts, on real test images. Peers:

* tf-keras-vis 0.8.7 ``Gradcam``, ``GradcamPlusPlus``, ``Scorecam``;
* the approach of the Keras Grad-CAM example (keras.io/examples/vision/grad_cam), re-implemented
  here: a model returning (target activations, output), a GradientTape, spatial mean of the
  gradients as channel weights, ReLU, division by the max.

Both peers take a layer by name from the model's own layer list, so each is first tried on the
book's model, whose backbone is a nested model (the exact error is recorded), then on a flat copy
of it ending at the logits (the backbone's layers re-created in one graph with the same weights;
its logits are checked against the book model's).

Per method it prints and writes to chapters/data/peers.json: the agreement of the raw maps at
feature resolution (Pearson r per image after min-max normalising each map to [0, 1]: mean and
min), and camcore/peer ratios of time per image and of peak memory. Like scripts/benchmark.py,
each measurement runs in its own process: one warm-up call, then the median time of ``--repeats``
calls (Score-CAM: one pass over its images, one image per call on both sides), and the peak
resident memory above the level just before the measured call (sampled every 2 ms).

Score-CAM is compared twice: tf-keras-vis scoring all K channels (its default), and scoring only
the channels camcore scores (max_N = the image's number of non-constant channels: camcore skips
constant channels, whose masks are undefined), so that both make the same masked passes.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import PeakMemory  # noqa: E402  (same memory sampler as the benchmark)

OUT = Path(__file__).resolve().parents[1] / "chapters" / "data" / "peers.json"
PAIRS = [("Grad-CAM", "tf-keras-vis"), ("Grad-CAM", "keras-example"),
         ("Grad-CAM++", "tf-keras-vis"), ("Score-CAM", "tf-keras-vis"),
         ("Score-CAM", "tf-keras-vis max_N=K")]  # K: the image's non-constant channels
CAMCORE_SETTINGS = ("camcore.grad_cam / grad_cam_plus_plus / score_cam(model, images) on the book "
                    "model: default layer, classes=None (predicted), batch_size=32; CamResult.maps")
MEASUREMENT = ("one process per (method, implementation); one warm-up call; time: median of "
               "--repeats calls (Score-CAM: one pass, one image per call on both sides) / images; "
               "peak_mb: peak resident memory above the level just before the call, sampled every "
               "2 ms; other_cores: average number of cores other processes kept busy during the "
               "timed calls (/proc/stat busy time minus the job's own CPU time; shared machine)")
COLUMNS = [("r mean", "pearson_mean", "8.4f"), ("r min", "pearson_min", "8.4f"),
           ("max|d|", "max_abs_diff", "8.3f"), ("ms/img cc", "camcore_ms_per_image", "11.1f"),
           ("peer", "peer_ms_per_image", "10.1f"), ("ratio", "ms_per_image_ratio", "8.3g"),
           ("MB cc", "camcore_peak_mb", "9.1f"), ("peer", "peer_peak_mb", "9.1f"),
           ("ratio", "peak_mb_ratio", "9.2g")]
TKV_SETTINGS = ("model_modifier=ReplaceToLinear(), score=CategoricalScore(predicted classes), "
                "penultimate_layer='top_activation', seek_penultimate_conv_layer=False "
                "(its default "
                "True would move to the Conv layer before it, top_conv), expand_cam=False and "
                "normalize_cam=False (raw 7x7 maps, normalised here), activation_modifier=ReLU and "
                "training=False (defaults); Scorecam: max_N=None (all channels), batch_size=32 "
                "(defaults, = camcore's); 'max_N=K': K = the number of "
                "non-constant channels of each image, the ones camcore scores")


# --------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------
def minmax(maps) -> np.ndarray:
    """Each map of a stack (N, ...) scaled to [0, 1]; a constant map becomes zeros."""
    maps = np.asarray(maps, np.float64)
    axes = tuple(range(1, maps.ndim))
    low, high = maps.min(axis=axes, keepdims=True), maps.max(axis=axes, keepdims=True)
    span = high - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1.0), 0.0)


def pearson(a, b) -> np.ndarray:
    """Pearson r per image between two stacks of maps, each min-max normalised first (which
    does not change r; it only makes the maps comparable as displayed). NaN for a constant map."""
    a, b = (minmax(m).reshape(len(m), -1) for m in (a, b))
    a, b = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return np.where(den > 0, (a * b).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)


def ratio(a, b):
    return None if a is None or b is None or b <= 0 else a / b


def cpu_counters():
    """(seconds the machine's CPUs were busy, CPU seconds this process used) since boot/start."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:8]]
    own = os.times()
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"), own.user + own.system


def error_text(call: str, e: Exception) -> str:
    return f"{call} raised {type(e).__name__}: {e}"


# --------------------------------------------------------------------------------------------
# One measurement (child process)
# --------------------------------------------------------------------------------------------
def flat_copy(model, output="logits"):
    """``model`` up to layer ``output`` as one flat functional graph of new layers with the same
    weights: nested models are inlined (walked with Keras's own graph runner), so every layer's
    ``.output`` lives in this graph."""
    import keras

    pairs = []

    def fresh(op):
        if isinstance(op, keras.Model):
            return lambda x, **kwargs: op._run_through_graph(x, operation_fn=fresh)
        pairs.append((op, type(op).from_config(op.get_config())))
        return pairs[-1][1]

    upto = keras.Model(model.inputs, model.get_layer(output).output)
    inputs = keras.Input(model.inputs[0].shape[1:], name="image")
    flat = keras.Model(inputs, upto._run_through_graph(inputs, operation_fn=fresh), name="flat")
    for old, new in pairs:
        new.set_weights(old.get_weights())
    return flat, upto


def keras_example_grad_cam(model, layer_name, images, classes):
    """The Keras example's approach, batched: gradients of the class score w.r.t. the layer's
    output, their spatial mean as channel weights, weighted sum, ReLU, divided by the max."""
    import keras
    import tensorflow as tf

    grad_model = keras.Model(model.inputs, [model.get_layer(layer_name).output, model.output])
    with tf.GradientTape() as tape:
        features, scores = grad_model(images)
        score = tf.gather(scores, classes, axis=1, batch_dims=1)
    weights = tf.reduce_mean(tape.gradient(score, features), axis=(1, 2))
    cam = tf.nn.relu(tf.einsum("nhwk,nk->nhw", features, weights))
    return (cam / tf.reduce_max(cam, axis=(1, 2), keepdims=True)).numpy()


# Each runner returns run(idx) -> (maps, classes, channels scored), one row per image x[idx].
def camcore_runner(method, model, x, info, **_):
    import camcore

    options = {"progress": False} if method == "Score-CAM" else {}

    def run(idx):
        r = camcore.METHODS[method](model, x[idx], **options)  # classes=None: the predicted class
        return r.maps, r.classes, (r.channel_weights != 0).sum(axis=1)
    return run


def keras_example_runner(method, model, x, info, flat, classes, activations, **_):
    import keras

    backbone, name = info["layer"].split("/")
    info["settings"] = ("own batched re-implementation; eager, grad model built per call as in "
                        "the example; score = logit of the predicted class")
    for call, layer in [(f"model.get_layer({name!r})", lambda: model.get_layer(name)),
                        (f"model.get_layer({backbone!r}).get_layer({name!r})",
                         lambda: model.get_layer(backbone).get_layer(name))]:
        try:  # on the book model (nested backbone)
            keras.Model(model.inputs, [layer().output, model.output])
        except Exception as e:
            info["errors"][f"nested: {call}"] = error_text(
                f"keras.Model(model.inputs, [{call}.output, model.output])", e)
    channels = np.full(len(x), activations.shape[-1])
    return lambda idx: (keras_example_grad_cam(flat, name, x[idx], classes[idx]), classes[idx],
                        channels[idx])


def tkv_runner(method, model, x, info, flat, classes, activations, impl):
    from tf_keras_vis.gradcam import Gradcam
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
    from tf_keras_vis.utils.scores import CategoricalScore

    cls = {"Grad-CAM": Gradcam, "Grad-CAM++": GradcamPlusPlus, "Score-CAM": Scorecam}[method]
    info["settings"] = TKV_SETTINGS
    options = dict(penultimate_layer=info["layer"].split("/")[-1],
                   seek_penultimate_conv_layer=False, expand_cam=False, normalize_cam=False)
    try:  # on the book model (nested backbone)
        nested = cls(model, model_modifier=ReplaceToLinear())
        if np.allclose(nested.model.predict(x[:2], verbose=0).sum(axis=1), 1, atol=1e-4):
            info["errors"]["nested: ReplaceToLinear()"] = (
                "no error, no effect: the modified model's outputs still sum to 1 (probabilities):"
                " the model ends in a Softmax layer, which has no activation to replace")
        nested(CategoricalScore(list(classes[:2])), x[:2], **options)
    except Exception as e:
        info["errors"]["nested"] = error_text(
            f"{cls.__name__}(model, model_modifier=ReplaceToLinear())(score, images, "
            + ", ".join(f"{k}={v!r}" for k, v in options.items()) + ")", e)
    peer = cls(flat, model_modifier=ReplaceToLinear())
    channels = np.full(len(x), activations.shape[-1])
    if impl.endswith("max_N=K"):  # the top-K channels by spatial std are the non-constant ones
        channels = (activations.std(axis=(1, 2)) > 0).sum(axis=1)

    def run(idx):
        top = {"max_N": int(channels[idx[0]])} if impl.endswith("max_N=K") else {}
        maps = peer(CategoricalScore(list(classes[idx])), x[idx], **options, **top)
        return np.asarray(maps), classes[idx], channels[idx]
    return run


def child(method, impl, n, repeats):
    import keras

    import camcore
    from camcore import book

    warnings.filterwarnings("ignore")
    model, _ = book.classifier(verbose=0)
    x = camcore.load_split("test", per_class=-(-n // 6)).images[:n].astype(np.float32)
    info = {"method": method, "impl": impl, "images": n, "errors": {},
            "layer": camcore.default_target_layer(model)}
    context = {"method": method, "model": model, "x": x, "info": info, "impl": impl}
    if impl != "camcore":
        flat, upto = flat_copy(model)
        info["flat_logits_max_abs_diff"] = float(np.abs(
            flat.predict(x, verbose=0) - upto.predict(x, verbose=0)).max())
        features = keras.Model(flat.inputs, flat.get_layer(info["layer"].split("/")[-1]).output)
        context |= {"flat": flat, "classes": model.predict(x, verbose=0).argmax(axis=1),
                    "activations": features.predict(x, verbose=0)}
    run = {"camcore": camcore_runner, "keras-example": keras_example_runner}.get(
        impl, tkv_runner)(**context)

    # Score-CAM: one image per call on both sides; the others: the whole batch in one call
    batches = [np.arange(i, i + 1) for i in range(n)] if method == "Score-CAM" else [np.arange(n)]
    run(batches[0])  # warm-up
    times, peaks, before = [], [], cpu_counters()
    for _ in range(1 if method == "Score-CAM" else repeats):
        start = time.perf_counter()
        with PeakMemory() as memory:
            maps, classes, channels = (np.concatenate(o) for o in zip(*map(run, batches)))
        times.append(time.perf_counter() - start)
        peaks.append(memory)
    busy, own = (b - a for a, b in zip(before, cpu_counters()))
    info["other_cores"] = max(0.0, (busy - own) / sum(times))  # CPU taken by other processes
    info |= {"maps": maps.astype(np.float64).tolist(), "classes": classes.tolist(),
             "channels_scored": float(channels.mean()), "channels": int(model.get_layer(
                 info["layer"].split("/")[0]).output.shape[-1]),
             "ms_per_image": 1000 * float(np.median(times)) / n,
             "peak_extra_mb": max(m.extra for m in peaks),
             "peak_rss_mb": max(m.peak for m in peaks)}
    print(json.dumps(info))


# --------------------------------------------------------------------------------------------
# Parent: one process per measurement, then the table
# --------------------------------------------------------------------------------------------
def measure(method, impl, n, repeats):
    cmd = [sys.executable, __file__, "--child", method, impl, "--images", str(n),
           "--repeats", str(repeats)]
    out = subprocess.run(cmd, capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode or not lines:
        last = [line for line in out.stderr.strip().splitlines() if line.strip()][-1:]
        print(f"  {method} / {impl}: failed ({last[0] if last else out.returncode})", flush=True)
        return {"errors": {"run": last[0] if last else f"exit code {out.returncode}"}}
    result = json.loads(lines[-1])
    print(f"  {method:<10} {impl:<21} {result['ms_per_image']:9.1f} ms/image  "
          f"peak +{result['peak_extra_mb']:7.1f} MB  ({n} images; other processes used "
          f"{result['other_cores']:.2f} cores)",
          flush=True)
    return result


def version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="images for Grad-CAM(++)")
    parser.add_argument("--score-images", type=int, default=4, help="images for Score-CAM")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls (median) per method")
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "IMPL"))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.child:
        return child(*args.child, args.images, args.repeats)

    started = time.perf_counter()
    count = {"Grad-CAM": args.images, "Grad-CAM++": args.images, "Score-CAM": args.score_images}
    print(f"CPU cores: {os.cpu_count()}; one process per measurement")
    runs = {}
    for method, impl in [(m, "camcore") for m in count] + PAIRS:
        runs[method, impl] = measure(method, impl, count[method], args.repeats)

    rows = []
    for method, impl in PAIRS:
        ours, peer = runs[method, "camcore"], runs[method, impl]
        row = {"method": method, "peer": impl, "images": count[method],
               "errors": peer.get("errors", {}) | {f"camcore: {k}": v for k, v in
                                                   ours.get("errors", {}).items()}}
        for key in ("settings", "flat_logits_max_abs_diff"):
            if key in peer:
                row[key] = peer[key]
        if "maps" in ours and "maps" in peer:
            r = pearson(ours["maps"], peer["maps"])
            row |= {"same_classes": ours["classes"] == peer["classes"],
                    "pearson_mean": float(np.nanmean(r)), "pearson_min": float(np.nanmin(r)),
                    "max_abs_diff": float(np.abs(minmax(ours["maps"])
                                                 - minmax(peer["maps"])).max())}
        for what, key in (("ms_per_image", "ms_per_image"), ("peak_mb", "peak_extra_mb")):
            a, b = ours.get(key), peer.get(key)
            row |= {f"camcore_{what}": a, f"peer_{what}": b, f"{what}_ratio": ratio(a, b)}
        row |= {f"{side}_{key}": run.get(key) for side, run in (("camcore", ours), ("peer", peer))
                for key in ("peak_rss_mb", "other_cores")}
        if method == "Score-CAM" and "ms_per_image" in ours and "ms_per_image" in peer:
            a, b = (r["ms_per_image"] / r["channels_scored"] for r in (ours, peer))
            row |= {"camcore_channels_scored": ours["channels_scored"],
                    "peer_channels_scored": peer["channels_scored"],
                    "camcore_ms_per_masked_image": a, "peer_ms_per_masked_image": b,
                    "ms_per_masked_image_ratio": ratio(a, b)}
            row["channels_note"] = (
                f"masked images per image: camcore {ours['channels_scored']:.1f} of "
                f"{ours['channels']} (constant channels skipped), {impl} "
                f"{peer['channels_scored']:.1f}; ms per masked image: camcore {a:.1f}, "
                f"peer {b:.1f}")
        rows.append(row)

    print(f"\n{'method':<11}{'peer':<22}{'imgs':>5}"
          + "".join(f"{head:>{fmt.split('.')[0]}}" for head, _, fmt in COLUMNS))
    for r in rows:
        print(f"{r['method']:<11}{r['peer']:<22}{r['images']:>5}" + "".join(
            "-".rjust(int(fmt.split(".")[0])) if r.get(key) is None else format(r[key], fmt)
            for _, key, fmt in COLUMNS))
    print("(r: Pearson of camcore's and the peer's maps per image after min-max normalisation, "
          "max|d|: largest difference of the normalised maps; ratios are camcore / peer; MB: peak "
          "resident memory above the level before the call)")
    seen = set()  # print each note once
    for r in rows:
        notes = [f"{k}: {v}" for k, v in r["errors"].items()]
        notes += [f"{k}: {r[k]}" for k in ("same_classes", "flat_logits_max_abs_diff",
                                           "channels_note") if k in r]
        if notes := [note for note in notes if note not in seen]:
            seen.update(notes)
            print(f"\n{r['method']} / {r['peer']}:\n  " + "\n  ".join(notes))
    print(f"\ntf-keras-vis settings: {TKV_SETTINGS}")
    others = {f"{m} / {i}": r["other_cores"] for (m, i), r in runs.items() if "other_cores" in r}
    if max(others.values(), default=0) > 0.2:
        print("\nwarning: other processes shared the CPU during some measurements (average "
              "cores they used), so those times are inflated: "
              + ", ".join(f"{k} {v:.2f}" for k, v in others.items()))

    report = {"command": "python " + " ".join(sys.argv),
              "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "machine": {"cpu_count": os.cpu_count()},
              "versions": {d: version(d) for d in ("tensorflow", "keras", "tf-keras-vis",
                                                   "camcore", "numpy", "scipy")},
              "images": count, "layer": runs["Grad-CAM", "camcore"].get("layer"),
              "repeats": args.repeats, "camcore_settings": CAMCORE_SETTINGS,
              "tf_keras_vis_settings": TKV_SETTINGS, "measurement": MEASUREMENT, "methods": rows,
              "seconds_total": round(time.perf_counter() - started, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out} ({report['seconds_total']:.0f} s in all)")


if __name__ == "__main__":
    main()
