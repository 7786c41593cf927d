"""nbval runs every chapter notebook in quick mode (a small subset, a short fine-tuning).

The kernels inherit this process's environment: CAMCORE_QUICK=1, a fresh CAMCORE_CACHE (so the
tests never read or overwrite the models a reader has cached) and, when the dataset is absent and
cannot be downloaded, CAMCORE_DATA pointing at a tiny stand-in written in Kaggle's layout.
"""

import os
import tempfile

from camcore.data import DatasetNotFoundError, find_dataset, write_tiny_dataset

os.environ["CAMCORE_QUICK"] = "1"
os.environ["CAMCORE_CACHE"] = tempfile.mkdtemp(prefix="camcore-cache-")
try:
    DATA_NOTE = f"chapters run in quick mode on the dataset at {find_dataset()}"
except DatasetNotFoundError:
    stand_in = write_tiny_dataset(tempfile.mkdtemp(prefix="camcore-tiny-data-"), per_class=24)
    os.environ["CAMCORE_DATA"] = str(stand_in)
    DATA_NOTE = ("the Intel Image Classification dataset is absent and could not be downloaded: "
                 f"chapters run in quick mode on a TINY SYNTHETIC STAND-IN at {stand_in}; their "
                 "figures mean nothing, only that every cell runs")


def pytest_report_header(config):
    return DATA_NOTE


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(DATA_NOTE)


GLUE_MIME_TYPES = tuple(f"application/papermill.record/{kind}"
                        for kind in ("text/plain", "text/html", "text/markdown", "image/png"))


def pytest_collectstart(collector):
    """Glued values are numbers of the full run: nbval must not compare them in quick mode."""
    if collector.fspath.ext == ".ipynb":
        collector.skip_compare = collector.skip_compare + GLUE_MIME_TYPES + ("stderr",)
