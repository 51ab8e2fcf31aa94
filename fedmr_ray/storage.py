"""Folders behind URIs (s3://, gs://, hdfs://, abfs://, ... through pyarrow.fs): datasets read from
them and run directories written to them.

A URI's folder is worked on through a local copy: a dataset is copied once into the cache and read
from there; a run directory is written locally (each file under a temporary name, then renamed, as
any run directory) and each file uploaded when written. An object store publishes an object only
when its upload completes, so a reader of the URI never sees half a file either. Transient
faults are retried by pyarrow's own clients (S3's and GCS's retry policies); what still fails is a
StorageError of one line. GCS retries for at most `GCS_RETRY_S` unless the URI says otherwise
(its `retry_limit_seconds`): without it, missing credentials would be retried for 15 minutes.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fedmr_ray.errors import ConfigError, one_line
from fedmr_ray.signals import held

if TYPE_CHECKING:
    import pyarrow.fs

SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file")  # what pyarrow.fs opens
ACCEPTED = "a local path or a URI of " + ", ".join(f"{s}://" for s in SCHEMES) + " (pyarrow.fs)"
GCS_RETRY_S = 60
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_uri(text: str | Path | None) -> bool:
    return isinstance(text, str) and _URI.match(text) is not None


class StorageError(ConfigError):
    """A URI that cannot be opened, read or written: one line naming it and why."""


_S3_USED = [False]  # whether this process opened an S3 filesystem (finish)


def finish() -> None:
    """At the end of a command that used S3: pyarrow's S3 client shut down now, not by pyarrow's
    exit hook, after which about one such process in ten aborted at exit with its work done
    (exit 134, "terminate called without an active exception": 3 of 24 processes listing and
    reading a run directory on S3; 0 of 32 shut down first; 1 of 40 shut down from an atexit
    hook of its own). S3 cannot be used again in this process afterwards."""
    if _S3_USED[0]:
        import pyarrow.fs as pafs

        pafs.finalize_s3()


@dataclass(frozen=True)
class Remote:
    """A folder behind a URI: its filesystem and its path there."""

    uri: str
    option: str  # the flag that gave it, for messages
    fs: pyarrow.fs.FileSystem
    root: str

    @classmethod
    def open(cls, uri: str, option: str) -> Remote:
        """The URI's filesystem; a scheme pyarrow does not know, or a URI it cannot parse (or a
        filesystem whose library is missing, such as HDFS's libjvm), is a StorageError."""
        import pyarrow.fs as pafs

        scheme = _URI.match(uri).group(1).lower()
        if scheme not in SCHEMES:
            raise StorageError(f"{option} {uri}: the scheme {scheme}:// is not one pyarrow.fs opens; accepted: {ACCEPTED}")
        opened = uri
        if scheme in ("gs", "gcs") and "retry_limit_seconds=" not in uri:
            opened += ("&" if "?" in uri else "?") + f"retry_limit_seconds={GCS_RETRY_S}"
        try:
            fs, root = pafs.FileSystem.from_uri(opened)
        except (OSError, ValueError) as err:  # ArrowInvalid is a ValueError
            raise StorageError(f"{option} {uri}: cannot open it ({one_line(err, 200)})") from None
        if fs.type_name == "s3":
            _S3_USED[0] = True
        return cls(uri.rstrip("/"), option, fs, root.rstrip("/"))

    def _path(self, relative: str) -> str:
        return f"{self.root}/{relative}" if relative else self.root

    def _do(self, what: str, work):
        try:
            return work()
        except OSError as err:
            raise self._failure(what, err) from None

    def _failure(self, what: str, err: OSError) -> StorageError:
        return StorageError(f"{self.option} {self.uri}: cannot {what} ({one_line(err, 200)})")

    def kind(self, path: str | None = None) -> str:
        """What is at a path of the filesystem (the folder by default): 'file', 'directory' or 'missing'."""
        import pyarrow.fs as pafs

        info = self._do("read it", lambda: self.fs.get_file_info(self.root if path is None else path))
        return {pafs.FileType.File: "file", pafs.FileType.Directory: "directory"}.get(info.type, "missing")

    def files(self) -> list[tuple[str, int, int]]:
        """Every file under the folder: (relative name, size, modification time in ns or 0)."""
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(self.root, recursive=True, allow_not_found=True)
        infos = self._do("list it", lambda: self.fs.get_file_info(selector))
        prefix = len(self.root) + 1
        return sorted((info.path[prefix:], info.size, info.mtime_ns or 0) for info in infos
                      if info.type == pafs.FileType.File)

    def check_writable_destination(self) -> None:
        """The folder is new or empty, inside something that exists (a bucket, say)."""
        kind = self.kind()
        if kind == "file":
            raise StorageError(f"{self.option} {self.uri}: exists and is not a directory")
        if kind == "directory" and self.files():
            raise StorageError(f"{self.option} {self.uri}: directory is not empty; choose a new path or remove it")
        if kind == "missing":
            self.require_top()

    def require_top(self) -> None:
        """What the folder is in (a bucket, say) exists."""
        top = self.root.split("/")[0]
        if top and top != self.root and self.kind(top) != "directory":
            raise StorageError(f"{self.option} {self.uri}: {top} does not exist (create the bucket, or the "
                               "folder, first)")

    def download(self, local: Path, names: list[str] | None = None) -> None:
        """Copy files of the folder (all of them by default) into `local`; the folder in an unknown
        bucket is a StorageError."""
        if names is None:
            names = [name for name, _, _ in self.files()]
            if not names:
                self.require_top()
        for relative in names:
            target = local / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.part")
            self._do(f"read {relative}", lambda: self._copy(self._path(relative), tmp, upload=False))
            tmp.replace(target)

    def read_bytes(self, relative: str) -> bytes:
        def read() -> bytes:
            with self.fs.open_input_stream(self._path(relative)) as src:
                return src.read()
        return self._do(f"read {relative}", read)

    def upload(self, local: Path, relative: str) -> None:
        """A local file uploaded whole. Ctrl-C and SIGTERM are held meanwhile (signals.held):
        closing a stream cut short would publish the part written so far."""
        with held():
            self._do(f"write {relative}", lambda: self._copy(self._path(relative), local, upload=True))

    def delete(self, relative: str) -> None:
        self._do(f"delete {relative}", lambda: self.fs.delete_file(self._path(relative)))

    def _copy(self, remote: str, local: Path, upload: bool) -> None:
        if upload:
            with local.open("rb") as src, self.fs.open_output_stream(remote) as dst:
                shutil.copyfileobj(src, dst, 8 << 20)
        else:
            with self.fs.open_input_stream(remote) as src, local.open("wb") as dst:
                shutil.copyfileobj(src, dst, 8 << 20)
