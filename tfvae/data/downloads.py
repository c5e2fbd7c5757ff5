"""A tensorflow-datasets dataset, prepared or downloaded, failing within seconds when it cannot be.

tensorflow-datasets retries a download whose server does not answer for about
3.5 minutes per file; `prepared_builder` asks each server once first, and
removes the folders a failed attempt created.
"""

import contextlib
import os
import pathlib
import shutil
import threading
import urllib.parse

import requests
import tensorflow_datasets as tfds

try:  # the module whose `_open_url` `_downloads_fail_fast` wraps
    from tensorflow_datasets.core.download import downloader as _tfds_downloader
except ImportError:  # another tensorflow-datasets layout: downloads keep tfds' behaviour
    _tfds_downloader = None

# Seconds to wait for a dataset's download server before calling it unreachable.
REACHABILITY_TIMEOUT = 5.0


class DatasetUnavailableError(RuntimeError):
    """A dataset is neither on disk nor downloadable."""


def prepared_builder(name, data_dir, download):
    """The tensorflow-datasets builder of `name`, prepared; downloads only when it is not."""
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises many types; all mean "not available"
        raise _unavailable(name, data_dir, download, error) from error
    if builder.is_prepared():
        return builder
    if not download:
        raise _unavailable(name, builder.data_dir_root, download, "it is not prepared there")
    local = "://" not in str(builder.data_dir_root)  # not gs://...: folders to clean up after a failure
    before = _Folders(pathlib.Path(builder.data_dir_root)) if local else None
    try:
        with _downloads_fail_fast():
            builder.download_and_prepare()
    except Exception as error:
        if before is not None:
            before.remove_new_ones()
        raise _unavailable(name, builder.data_dir_root, download, error) from error
    return builder


def _unavailable(name, looked_in, download, reason):
    looked_in = looked_in or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    if isinstance(reason, BaseException):
        reason = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
    return DatasetUnavailableError(
        f"Dataset {name!r} is not prepared in {str(looked_in)!r}"
        f"{' and could not be downloaded' if download else ' (download=False)'}: {reason}. "
        f"Point TFDS_DATA_DIR (or data_dir=) at a tensorflow-datasets directory that holds it, "
        f"or run `tfds build {name} --data_dir DIR` on a machine with internet access and copy DIR."
    )


class _Folders:
    """The folders under `root` now, and those that a failed download should not leave behind."""

    def __init__(self, root):
        self._root = root
        self._existing = {pathlib.Path(path) for path, _, _ in os.walk(root)}
        # `root` and its missing parents, which tensorflow-datasets creates.
        self._missing_chain = [folder for folder in (root, *root.parents) if not folder.exists()]

    def remove_new_ones(self):
        """Deletes each folder created under `root` since, then `root` and its parents if created and empty."""
        new = {pathlib.Path(path) for path, _, _ in os.walk(self._root)} - self._existing
        for folder in sorted(new):
            if folder.parent not in new:  # the topmost new folders; rmtree takes the rest
                shutil.rmtree(folder, ignore_errors=True)
        for folder in self._missing_chain:  # deepest first
            with contextlib.suppress(OSError):  # not empty, or already gone
                folder.rmdir()


class _UnreachableError(OSError):
    """A download server did not answer."""


def unreachable_reason(url, timeout=REACHABILITY_TIMEOUT, verify=True):
    """Why the server of `url` does not answer within `timeout` seconds, or None when it does.

    One HEAD request through `requests` (so proxies configured for
    tensorflow-datasets' downloads apply), without retries; any HTTP answer,
    even an error status, counts as reachable. Non-HTTP URLs are not checked.
    """
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        return None
    outcome = {}

    def probe():
        try:
            requests.head(url, timeout=timeout, allow_redirects=False, verify=verify).close()
        except Exception as error:  # requests' and urllib3's errors: all mean "no answer"
            outcome["error"] = error

    # A thread, because name resolution ignores requests' timeout.
    thread = threading.Thread(target=probe, daemon=True, name="tfvae-reachability")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return f"no answer from {url} within {timeout:g} s"
    if "error" in outcome:
        # requests wraps urllib3's error, whose `reason` says what failed (name resolution, refusal, ...).
        cause = getattr(outcome["error"].args[0] if outcome["error"].args else None, "reason", None) or outcome["error"]
        return f"cannot reach {urllib.parse.urlparse(url).netloc}: {type(cause).__name__}: {cause}"
    return None


@contextlib.contextmanager
def _downloads_fail_fast():
    """Makes tensorflow-datasets give up at once on a download whose server does not answer.

    tensorflow-datasets fetches each URL with a `requests` session that
    retries failed connections 10 times with exponential back-off
    (urllib3 `Retry(total=10, backoff_factor=0.2)`: 0.4 + 0.8 + ... + 102.4 s),
    about 3.5 minutes per file on a machine without internet. Here each URL's
    server is first asked once, with a timeout; a server that answers is
    downloaded from as before, with all of tensorflow-datasets' retries.
    Files already in the download folder are not fetched, so not checked.
    """
    original = getattr(_tfds_downloader, "_open_url", None) if _tfds_downloader else None
    if original is None:  # another tensorflow-datasets version: keep its behaviour
        yield
        return

    def open_url(url, **kwargs):
        reason = unreachable_reason(url, verify=kwargs.get("verify", True))
        if reason:
            raise _UnreachableError(reason)
        return original(url, **kwargs)

    _tfds_downloader._open_url = open_url
    try:
        yield
    finally:
        _tfds_downloader._open_url = original
