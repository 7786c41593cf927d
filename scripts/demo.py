"""The end-to-end demo: the book's classifier (yours if cached, else the shipped one), every method.

    python scripts/demo.py [--images-per-class 2] [--out _build/demo]

Writes one figure per method (test images, one row per class) and prints the time each took.
"""

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import camcore  # noqa: E402
from camcore import book  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-per-class", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("_build/demo"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    model, report = book.classifier()

    test = camcore.load_split("test", per_class=args.images_per_class)
    probs = model.predict(test.images.astype("float32"), verbose=0)
    for path, label, p in zip(test.paths, test.labels, probs):
        print(f"  {path.name:>10}  true {camcore.CLASS_NAMES[label]:<9}  "
              f"predicted {camcore.CLASS_NAMES[p.argmax()]:<9} ({p.max():.2f})")

    for name, method in camcore.METHODS.items():
        start = time.perf_counter()
        result = method(model, test.images)
        seconds = time.perf_counter() - start
        pictures = [camcore.overlay(img, h) for img, h in zip(test.images, result.heatmaps)]
        titles = [f"{camcore.CLASS_NAMES[c]} {s:.2f}"
                  for c, s in zip(result.classes, result.scores)]
        fig = camcore.show_grid(pictures, titles, ncols=args.images_per_class * 2,
                                title=f"{name} at {result.layer}")
        target = args.out / f"{name.lower().replace('+', 'p')}.png"
        fig.savefig(target, dpi=80)
        print(f"{name:<11} {seconds:6.1f} s for {len(test)} images -> {target}")


if __name__ == "__main__":
    main()
