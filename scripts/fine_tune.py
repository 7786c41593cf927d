"""Fine-tune the book's classifiers and print the figures each is judged on.

    python scripts/fine_tune.py [--kind main] [--kind hidden ...] [--epochs N] [--per-class N]

Each ``--kind`` (default "main"; see camcore.book.KINDS) is trained with ``book.recipe(kind)``,
in this order, in one process: kinds whose frozen activations are the same (chapter 5's two
small models) compute them once. Each model is saved in the camcore cache, where
``book.classifier(kind)`` finds it (and ``scripts/ship.py`` ships it).

Target of the main classifier (EfficientNet-Lite0, 224x224, 2-core CPU, the shared
10,899-image subset): test accuracy >= 93.5 % in <= 5 minutes of wall time, data loading
included.
"""

import time

STARTED = time.perf_counter()  # wall time counts imports and model building too

import argparse  # noqa: E402
from dataclasses import replace  # noqa: E402

from camcore import book  # noqa: E402
from camcore.book.training import fine_tune, save_to_cache  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", action="append", choices=list(book.KINDS),
                        help="a classifier to train (repeat for several; default: main)")
    parser.add_argument("--backbone", default=None, help="default: the book's (CAMCORE_BACKBONE)")
    parser.add_argument("--epochs", type=int, default=None, help="default: the kind's recipe")
    parser.add_argument("--per-class", type=int, default=None, help="default: the kind's recipe")
    args = parser.parse_args()
    started = STARTED
    for kind in args.kind or ["main"]:
        recipe = book.recipe(kind)
        changes = {"backbone": args.backbone, "epochs": args.epochs, "per_class": args.per_class}
        recipe = replace(recipe, **{k: v for k, v in changes.items() if v is not None})
        print(f"\n== {kind}: {recipe.key()}", flush=True)
        model, report = fine_tune(recipe)
        path = save_to_cache(recipe, model, report)  # atomic, where load_or_train finds it
        wall = time.perf_counter() - started
        print(f"{kind}: {report.description}")
        print(f"backbone {recipe.backbone}, input {recipe.input_size}x{recipe.input_size}, "
              f"{report.train_images} training and {report.test_images} test images")
        for stage, seconds in report.seconds.items():
            print(f"  {stage:<20} {seconds:7.1f} s")
        target = kind == "main" and recipe == book.recipe("main")
        print(f"wall time {wall:.1f} s"
              + (f" (target <= 300 s: {'met' if wall <= 300 else 'MISSED'})" if target else ""))
        print(f"test accuracy {report.test_accuracy:.4f}"
              + (f" (target >= 0.935: {'met' if report.test_accuracy >= 0.935 else 'MISSED'})"
                 if target else ""))
        print(f"saved {path}", flush=True)
        started = time.perf_counter()


if __name__ == "__main__":
    main()
