"""One small storage interface over a local folder or ``gs://bucket/prefix``.

This is the only cloud code of the project: datasets, recorded trials and anything else kept "in a
store" go through `open_store`. Keys are relative POSIX paths (``"A01T_raw.fif"``,
``"recordings/s01/trial-0001.npz"``); a store never hands out keys outside its root.

>>> store = open_store("gs://lab-bucket/eeg")     # or "/data/eeg", "file:///data/eeg"
>>> store.write_bytes("notes/readme.txt", b"hello")
>>> store.list("notes/")
['notes/readme.txt']

Google Cloud Storage uses the official ``google-cloud-storage`` client with the ambient
credentials; when ``STORAGE_EMULATOR_HOST`` is set (tests, local emulators) it connects
anonymously to project ``GOOGLE_CLOUD_PROJECT`` (default ``"test"``).
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Protocol, runtime_checkable

from bcistream.errors import BcistreamError

__all__ = ["GCSStore", "LocalStore", "Store", "StorageError", "fetch_prefix", "open_store"]

_TMP_PREFIX = ".tmp-"


class StorageError(BcistreamError):
    """A store cannot be opened, or a key is invalid or missing."""


@runtime_checkable
class Store(Protocol):
    """What every store offers. ``url`` names the root (a folder or ``gs://bucket/prefix``)."""

    url: str

    def list(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix`` (a plain string prefix of the key), sorted."""

    def read_bytes(self, key: str) -> bytes:
        """The object's content; `StorageError` when missing."""

    def write_bytes(self, key: str, data: bytes) -> None:
        """Create or replace the object; readers see the old or the new content, never a part."""

    def exists(self, key: str) -> bool:
        """Whether the object exists."""

    def local_copy(self, key: str) -> Path:
        """A local file with the object's content (the file itself for a folder store)."""


def _check_key(key: str) -> str:
    key = str(key).replace("\\", "/")
    parts = PurePosixPath(key).parts
    if not key or key.startswith("/") or ".." in parts or not parts:
        raise StorageError(f"invalid store key '{key}': expected a relative path without '..'")
    return "/".join(parts)


class LocalStore:
    """A folder. Writes go to a temporary file in the same folder, then ``os.replace``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)
        if self.root.exists() and not self.root.is_dir():
            raise StorageError(f"{self.root}: exists and is not a folder")

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def list(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        keys = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith(_TMP_PREFIX):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def read_bytes(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise StorageError(f"{path}: no such object in store {self.url}")
        return path.read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def local_copy(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise StorageError(f"{path}: no such object in store {self.url}")
        return path


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bcistream" / "gcs"


class GCSStore:
    """``gs://bucket/prefix`` through google-cloud-storage.

    Parameters
    ----------
    bucket : str
    prefix : str
        Key prefix inside the bucket (no leading/trailing slash needed).
    cache_dir : Path, optional
        Where `local_copy` puts downloads (default ``$XDG_CACHE_HOME/bcistream/gcs``); a cached
        file is reused while its MD5 matches the object's.
    client : google.cloud.storage.Client, optional
    """

    def __init__(self, bucket: str, prefix: str = "", *, cache_dir: str | Path | None = None,
                 client=None) -> None:
        self.prefix = prefix.strip("/")
        self.url = f"gs://{bucket}/{self.prefix}".rstrip("/")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else _default_cache()
        self._client = client or _gcs_client()
        self._bucket = self._client.bucket(bucket)
        self.bucket_name = bucket

    def _name(self, key: str) -> str:
        key = _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _strip(self, name: str) -> str:
        return name[len(self.prefix) + 1:] if self.prefix else name

    def _call(self, what: str, fn):
        from google.api_core import exceptions as gexc

        try:
            return fn()
        except gexc.NotFound as exc:
            raise StorageError(f"{what}: not found ({exc.message})") from None
        except gexc.GoogleAPIError as exc:
            raise StorageError(f"{what}: {type(exc).__name__}: {exc}") from None

    def list(self, prefix: str = "") -> list[str]:
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        blobs = self._call(f"{self.url}: list '{prefix}'",
                           lambda: list(self._client.list_blobs(self._bucket, prefix=full)))
        return sorted(self._strip(b.name) for b in blobs if not b.name.endswith("/"))

    def read_bytes(self, key: str) -> bytes:
        name = self._name(key)
        blob = self._bucket.blob(name)
        return self._call(f"gs://{self.bucket_name}/{name}", blob.download_as_bytes)

    def write_bytes(self, key: str, data: bytes) -> None:
        # A GCS object upload is atomic: readers see the old or the new object, never a part.
        name = self._name(key)
        blob = self._bucket.blob(name)
        self._call(f"gs://{self.bucket_name}/{name}", lambda: blob.upload_from_string(data))

    def exists(self, key: str) -> bool:
        name = self._name(key)
        return bool(self._call(f"gs://{self.bucket_name}/{name}", lambda: self._bucket.blob(name).exists()))

    def local_copy(self, key: str) -> Path:
        name = self._name(key)
        where = f"gs://{self.bucket_name}/{name}"
        blob = self._call(where, lambda: self._bucket.get_blob(name))
        if blob is None:
            raise StorageError(f"{where}: no such object")
        dest = self.cache_dir / self.bucket_name / name
        if dest.is_file() and blob.md5_hash and _md5_b64(dest) == blob.md5_hash:
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=dest.parent)
        os.close(fd)
        try:
            self._call(where, lambda: blob.download_to_filename(tmp))
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return dest


def _md5_b64(path: Path) -> str:
    digest = hashlib.md5()  # noqa: S324  (GCS reports MD5; used to validate the cache, not security)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return base64.b64encode(digest.digest()).decode()


def _gcs_client():
    try:
        from google.cloud import storage
    except ImportError:
        raise StorageError("gs:// URLs need google-cloud-storage (pip install 'bcistream[gcs]')") from None
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "test"),
                              credentials=AnonymousCredentials())
    try:
        return storage.Client()
    except Exception as exc:  # google.auth raises DefaultCredentialsError and friends
        raise StorageError(f"cannot connect to Google Cloud Storage: {exc}") from None


def open_store(url: str | Path, *, cache_dir: str | Path | None = None) -> Store:
    """Open a store by URL.

    Parameters
    ----------
    url : str or Path
        A folder (``/data/eeg``, ``file:///data/eeg``) or ``gs://bucket[/prefix]``.
    cache_dir : Path, optional
        Download cache of a ``gs://`` store (see `GCSStore`).

    Raises
    ------
    StorageError
        An unsupported scheme or a malformed ``gs://`` URL.
    """
    text = str(url)
    if text.startswith("gs://"):
        bucket, _, prefix = text[len("gs://"):].partition("/")
        if not bucket:
            raise StorageError(f"'{text}': expected gs://BUCKET[/PREFIX]")
        return GCSStore(bucket, prefix, cache_dir=cache_dir)
    if text.startswith("file://"):
        text = text[len("file://"):]
    elif "://" in text:
        raise StorageError(f"'{text}': unsupported store URL (use a folder or gs://bucket/prefix)")
    return LocalStore(text)


def fetch_prefix(store: Store, folder: str = "", *, suffixes: tuple[str, ...] | None = None) -> Path:
    """Make every object under the key folder ``folder`` available locally; return the local folder.

    A folder store returns its own folder (nothing is copied); a GCS store downloads into its cache
    (objects already cached with the same MD5 are not downloaded again).

    Parameters
    ----------
    store : Store
    folder : str
        Key folder (``""`` for the whole store).
    suffixes : tuple of str, optional
        Only keys ending with one of these (case-insensitive).
    """
    folder = folder.strip("/")
    if isinstance(store, LocalStore):
        return store.root / folder if folder else store.root
    if not isinstance(store, GCSStore):
        raise StorageError(f"{store.url}: cannot fetch from a {type(store).__name__}")
    wanted = tuple(s.lower() for s in suffixes) if suffixes else None
    keys = [k for k in store.list(f"{folder}/" if folder else "")
            if wanted is None or k.lower().endswith(wanted)]
    if not keys:
        raise StorageError(f"{store.url}: no objects under '{folder or '/'}'")
    for key in keys:
        store.local_copy(key)
    return store.cache_dir / store.bucket_name / store._name(folder) if folder else (
        store.cache_dir / store.bucket_name / store.prefix)
