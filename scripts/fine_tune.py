"""Fine-tune the classifier and print the figures the target is judged on.

    python scripts/fine_tune.py [--backbone efficientnet_lite0] [--epochs N]

Target (EfficientNet-Lite0, 224x224, 2-core CPU, the shared 10,899-image subset):
test accuracy >= 93.5 % in <= 5 minutes of wall time, data loading included.
The model is saved in the camcore cache, where load_or_train finds it.
"""

import time

STARTED = time.perf_counter()  # wall time counts imports and model building too

import argparse  # noqa: E402

from camcore.book.training import Recipe, fine_tune, save_to_cache  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default=Recipe.backbone)
    parser.add_argument("--epochs", type=int, default=Recipe.epochs)
    parser.add_argument("--per-class", type=int, default=None)
    args = parser.parse_args()
    recipe = Recipe(backbone=args.backbone, epochs=args.epochs, per_class=args.per_class)

    model, report = fine_tune(recipe)
    wall = time.perf_counter() - STARTED
    path = save_to_cache(recipe, model, report)  # atomic, where load_or_train finds it

    print(f"\nbackbone {recipe.backbone}, input {recipe.input_size}x{recipe.input_size}, "
          f"{report.train_images} training and {report.test_images} test images")
    for stage, seconds in report.seconds.items():
        print(f"  {stage:<20} {seconds:7.1f} s")
    print(f"wall time {wall:.1f} s (target <= 300 s: {'met' if wall <= 300 else 'MISSED'})")
    print(f"test accuracy {report.test_accuracy:.4f} "
          f"(target >= 0.935: {'met' if report.test_accuracy >= 0.935 else 'MISSED'})")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
