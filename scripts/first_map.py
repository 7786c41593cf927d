"""The first map in a minute: time from `import camcore` to the first Grad-CAM map of a test image.

    python scripts/first_map.py

Runs a fresh Python process with an empty CAMCORE_CACHE (as on a new Colab runtime, with the
dataset present) that imports camcore, gets the book's classifier (the shipped one: nothing
cached), loads one test image and computes its Grad-CAM map; prints each stage's seconds.
Target: at most 60 s on 2 CPU cores.
"""

import os
import subprocess
import sys
import tempfile

CHILD = r"""
import time
start = time.perf_counter()
import camcore
from camcore import book
imported = time.perf_counter()
model, report = book.classifier()
loaded = time.perf_counter()
test = camcore.load_split("test", per_class=1)
image = test.images[:1]
data = time.perf_counter()
result = camcore.grad_cam(model, image)
done = time.perf_counter()
assert result.heatmaps.shape == (1, 224, 224)
print(f"import camcore      {imported - start:6.1f} s")
print(f"the classifier      {loaded - imported:6.1f} s")
print(f"one test image      {data - loaded:6.1f} s")
print(f"its Grad-CAM map    {done - data:6.1f} s")
print(f"TOTAL               {done - start:6.1f} s (target <= 60 s: "
      f"{'met' if done - start <= 60 else 'MISSED'})")
"""


def main():
    with tempfile.TemporaryDirectory(prefix="camcore-empty-cache-") as cache:
        env = dict(os.environ, CAMCORE_CACHE=cache, TF_CPP_MIN_LOG_LEVEL="3")
        out = subprocess.run([sys.executable, "-c", CHILD], env=env, text=True,
                             capture_output=True)
    print(out.stdout, end="")
    if out.returncode:
        sys.exit(out.stderr[-3000:])


if __name__ == "__main__":
    main()
