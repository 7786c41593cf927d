"""Download every package the book needs into one folder, to install it later without internet.

    python scripts/wheelhouse.py [FOLDER]      # default: wheelhouse/
    make wheelhouse                            # the same, with .venv's Python

The folder gets wheels of the project's dependencies and of its "test", "book" and "workshop"
extras, for the Python and platform running this script (use the Python the offline machine
will use), plus
pip and the build backend that `pip install -e .` needs. Packages published only as source are
built into wheels here, so that nothing is compiled offline. Then, on the machine without
internet, in a copy of the repository:

    python3 -m venv .venv
    .venv/bin/pip install --no-index --find-links wheelhouse -e ".[book,workshop]"

or let the Makefile do it: PIP_NO_INDEX=1 PIP_FIND_LINKS="$PWD/wheelhouse" make book
"""

import re
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = "test,book,workshop"
SDISTS = ("*.tar.gz", "*.zip", "*.tar.bz2")
BUILD_REQUIRES = re.compile(r"\[build-system\]\s*requires\s*=\s*\[(.*?)\]", re.DOTALL)


def pip(*args):
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def main():
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "wheelhouse").resolve()
    build_requires = re.findall(r'"([^"]+)"', BUILD_REQUIRES.search(
        (ROOT / "pyproject.toml").read_text()).group(1))  # no tomllib on Python 3.10
    pip("download", "--dest", str(folder), "--prefer-binary",
        f"{ROOT}[{EXTRAS}]", "pip", *build_requires)
    for pattern in SDISTS:  # source-only packages: build their wheels now
        for sdist in folder.glob(pattern):
            if sdist.name.startswith("camcore-"):  # the project itself installs from its source
                sdist.unlink()
                continue
            pip("wheel", "--no-deps", "--wheel-dir", str(folder), str(sdist))
            sdist.unlink()
    files = [p for p in folder.iterdir() if p.is_file()]
    size = sum(p.stat().st_size for p in files) / 1e6
    rel = folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder
    print(f"\n{rel}: {len(files)} files, {size:,.0f} MB, for Python "
          f"{sys.version_info.major}.{sys.version_info.minor} on {sysconfig.get_platform()}")
    print("Offline, in the repository (Python of the same version):\n"
          f'  python3 -m venv .venv && .venv/bin/pip install --no-index --find-links {rel} '
          f'-e ".[{EXTRAS}]"')
    print(f'  or: PIP_NO_INDEX=1 PIP_FIND_LINKS="{folder}" make book')


if __name__ == "__main__":
    main()
