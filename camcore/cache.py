"""Where camcore keeps downloaded and derived files (converted weights, fine-tuned models).

The cache cannot break:

* every file is written by ``atomic_path``: to a temporary file in the same folder, then renamed,
  so a reader (or a later run after Ctrl-C, a crash or a full disk) sees the old file or the
  complete new one, never a partial file;
* a cached file that cannot be read is reported in a ``CacheWarning`` (``warn_unusable``) and
  rebuilt by the caller, not raised on every later run;
* ``file_lock`` lets one process build a file while others wait for it, then read it;
* a temporary file left by a save that was killed (``kill -9``, a power cut) is removed the next
  time that file is written;
* a cache folder that cannot be created or written raises ``CacheNotWritableError``, which says
  how to point ``CAMCORE_CACHE`` elsewhere (callers that can work without a cache catch it).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets
import time
import warnings
import zipfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: atomic renames alone
    fcntl = None

CACHE_ENV_VAR = "CAMCORE_CACHE"
STALE_SECONDS = 24 * 3600  # a temporary file this old is stale even if its process id is alive


class CacheWarning(UserWarning):
    """A cached file could not be used (missing, damaged, incomplete); it is being rebuilt."""


class CacheNotWritableError(OSError):
    """camcore's cache folder cannot be created or written; the message says how to move it."""


def cache_root() -> Path:
    """``$CAMCORE_CACHE`` with ``~`` expanded (as ``%env`` leaves it), else ``~/.cache/camcore``."""
    value = os.environ.get(CACHE_ENV_VAR)
    if value:
        return Path(value).expanduser()
    try:
        home = Path.home()
    except RuntimeError as e:  # no HOME and no entry in the password database
        raise CacheNotWritableError(_how_to_move(Path("~/.cache/camcore"), e)) from e
    return home / ".cache" / "camcore"


def _how_to_move(path: Path, problem: BaseException | str) -> str:
    if isinstance(problem, BaseException):
        problem = f"{type(problem).__name__}: {problem}"
    source = (f"set by the environment variable {CACHE_ENV_VAR}" if os.environ.get(CACHE_ENV_VAR)
              else f"the default in your home folder (HOME), as {CACHE_ENV_VAR} is not set")
    return (f"camcore cannot write its cache folder {path} ({source}): {problem}. Point "
            f"{CACHE_ENV_VAR} at a folder you can write, before camcore uses it: in a notebook "
            f"%env {CACHE_ENV_VAR}=/tmp/camcore-cache, in Python "
            f"os.environ[{CACHE_ENV_VAR!r}] = '/tmp/camcore-cache', in a shell "
            f"export {CACHE_ENV_VAR}=/tmp/camcore-cache")


def cache_dir(*parts: str) -> Path:
    """``$CAMCORE_CACHE/<parts>`` (default ``~/.cache/camcore/<parts>``), created if missing.

    Raises ``CacheNotWritableError`` (naming ``CAMCORE_CACHE`` and the fix) if the folder cannot
    be created (no permission, a file in the way, a read-only file system) or written.
    """
    path = cache_root().joinpath(*parts)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CacheNotWritableError(_how_to_move(path, e)) from e
    if not os.access(path, os.W_OK | os.X_OK):
        raise CacheNotWritableError(_how_to_move(path, "the folder is not writable"))
    return path


def _remove_stale_temporaries(final: Path) -> None:
    """Remove ``final``'s temporary files left by killed saves: their process is gone (or they
    are older than ``STALE_SECONDS``, e.g. written from another machine sharing the folder)."""
    stem, suffix = re.escape(final.stem), re.escape(final.suffix)
    pattern = re.compile(rf"\.{stem}\.tmp-(\d+)-[0-9a-f]+{suffix}")
    for path in final.parent.glob(f".{glob.escape(final.stem)}.tmp-*"):
        match = pattern.fullmatch(path.name)
        if match and (not _alive(int(match[1])) or _age(path) > STALE_SECONDS):
            with contextlib.suppress(OSError):
                path.unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: the process exists, owned by someone else
        return True
    return True


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


@contextlib.contextmanager
def atomic_path(final_path):
    """Yield a temporary path beside ``final_path`` to write to; on success rename it over that.

    The temporary name is hidden (``.<stem>.tmp-<pid>-<random><suffix>``) and keeps the suffix,
    as Keras's ``model.save`` and ``np.savez`` want. On success the file is flushed to disk and
    ``os.replace``-d over ``final_path`` (atomic within a folder). On any exception, Ctrl-C
    included, the temporary file is removed and ``final_path`` is left as it was. Temporary
    files of ``final_path`` left by a killed process are removed first.
    """
    final = Path(final_path)
    _remove_stale_temporaries(final)
    tmp = final.with_name(f".{final.stem}.tmp-{os.getpid()}-{secrets.token_hex(4)}{final.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)  # only left after a failure: the rename consumed it


@contextlib.contextmanager
def file_lock(path, waiting_message: str | None = None):
    """Hold an exclusive ``fcntl.flock`` on the file ``path`` (created if missing) for the block.

    If another process holds it, print ``waiting_message`` (when given) and wait. The kernel
    releases the lock if its holder dies, so a crash never leaves a stale lock; the lock file is
    never deleted (deleting it would let two processes lock two different files). Without
    ``fcntl`` (Windows) or on a file system refusing locks, this does nothing: the atomic writes
    still guarantee complete files, but two processes may both build one.
    """
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(path, "a") as f:
        locked = _lock(f, waiting_message)
        try:
            yield
        finally:
            if locked:
                fcntl.flock(f, fcntl.LOCK_UN)


def _lock(f, waiting_message: str | None) -> bool:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if waiting_message:
            print(waiting_message, flush=True)
        fcntl.flock(f, fcntl.LOCK_EX)
    except OSError:  # pragma: no cover - e.g. ENOLCK on some network file systems
        return False
    return True


def check_zip(path) -> None:
    """Raise unless ``path`` is a complete zip archive (``.keras``, ``.npz``) with intact members.

    Gives a clear reason (empty, not a zip archive, a member failing its CRC check) where the
    loaders would raise misleading errors (Keras: "File not found").
    """
    if Path(path).stat().st_size == 0:
        raise ValueError("the file is empty (0 bytes)")
    with zipfile.ZipFile(path) as archive:  # BadZipFile if garbage or truncated
        bad = archive.testzip()
    if bad is not None:
        raise zipfile.BadZipFile(f"the member {bad!r} fails its CRC check")


def warn_unusable(what: str, path, problem: BaseException | str, action: str) -> None:
    """Warn (``CacheWarning``) that the cached ``what`` at ``path`` is unusable, and what happens.

    ``problem``: an exception (reported as "could not be loaded (<type>: <message>)") or a phrase
    such as "is missing". The message reads e.g. "the cached model /c/m.keras could not be loaded
    (BadZipFile: File is not a zip file); training it again".
    """
    if isinstance(problem, BaseException):
        problem = f"could not be loaded ({type(problem).__name__}: {problem})"
    warnings.warn(f"the cached {what} {path} {problem}; {action}", CacheWarning, stacklevel=3)
