"""Ship the book's classifier: export the cached model of the book's recipe into the package.

    python scripts/ship.py      (after `make train`, or the fine-tuning chapter in full mode)

Writes camcore/book/weights/book_classifier.npz (the layers fine-tuning changed) and its report
(.json), then sets camcore.book.shipped.WEIGHTS_SHA256 to the new file's SHA-256.
"""

import re
from dataclasses import asdict
from pathlib import Path

from camcore.book import shipped
from camcore.book.training import Recipe, load_cached


def main():
    cached = load_cached(Recipe())
    if cached is None:
        raise SystemExit("no cached model of the book's recipe on this data: run `make train`")
    model, report = cached
    report.recipe = asdict(Recipe(**report.recipe))  # every field, today's defaults included
    n = report.train_images + report.test_images
    report.data_dir = f"Intel Image Classification, a {n:,}-image subset in Kaggle's layout"
    digest = shipped.export(model, report)
    source = Path(shipped.__file__)
    text = re.sub(r'WEIGHTS_SHA256 = "[0-9a-f]{64}"', f'WEIGHTS_SHA256 = "{digest}"',
                  source.read_text())
    source.write_text(text)
    size = shipped.WEIGHTS.stat().st_size / 2**20
    print(f"wrote {shipped.WEIGHTS} ({size:.1f} MB; test accuracy {report.test_accuracy:.4f} on "
          f"{report.test_images} images), SHA-256 {digest} (set in {source})")


if __name__ == "__main__":
    main()
