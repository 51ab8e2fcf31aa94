"""Decoded datasets cached as .npy files, so that only the first run decodes.

An entry is a folder `<cache>/<dataset>-<key>/` whose key hashes the entry format's version and the
source files' paths, sizes and modification times: a changed file, or a new way of decoding, makes
a new entry. Entries are written to a temporary folder and renamed, so a reader never sees half of
one; an entry damaged since (a file truncated, say) is noticed when read, and decoded and written
again. Pixels are kept as stored (uint8 where they are whole 1/255 steps: a quarter of float32's
size), before normalisation, so one entry serves every --normalise; the images are read back
memory-mapped.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from fedmr_ray.data.sources import Decoded, Source, decode
from fedmr_ray.errors import one_line
from fedmr_ray.storage import Remote, StorageError

FORMAT_VERSION = 1  # of a URI's copied folder
ENTRY_VERSION = 2  # of a decoded entry; 2: LEAF's test split in training users' order, test_users.npy
ARRAYS = ("x_train", "y_train", "x_test", "y_test")
USERS = ("users", "test_users")  # arrays of datasets with users of their own
COPIED = ".fedmr-ray-copied"  # marks a complete copy of a URI's dataset folder


def cache_root(cache_dir: str | None) -> Path:
    """--cache-dir, else $XDG_CACHE_HOME/fedmr-ray, else ~/.cache/fedmr-ray."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser().absolute()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fedmr-ray"


def source_key(source: Source) -> str:
    digest = hashlib.sha256(json.dumps([ENTRY_VERSION, source.spec.name, source.format, str(source.root)]).encode())
    for path in source.files:
        stat = path.stat()
        digest.update(f"\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def entry_dir(source: Source, cache_dir: str | None) -> Path:
    return cache_root(cache_dir) / f"{source.spec.name}-{source_key(source)}"


def fetch(uri: str, cache_dir: str | None) -> Path:
    """A dataset folder behind a URI (s3://bucket/cifar10, ...), copied once into the cache as
    `<cache>/remote-<key>/`, whose key hashes the URI and its files' names, sizes and times: a
    changed file makes a new copy. Read from there as a local folder."""
    remote = Remote.open(uri, "--data-dir")
    files = remote.files()
    if not files:
        remote.require_top()
        raise StorageError(f"--data-dir {uri}: no files there (or no such folder)")
    key = hashlib.sha256(json.dumps([FORMAT_VERSION, remote.uri, files]).encode()).hexdigest()[:20]
    entry = cache_root(cache_dir) / f"remote-{key}"
    if (entry / COPIED).is_file():
        return entry
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".remote-{key}-", dir=entry.parent))
    try:
        print(f"fedmr-ray: copying {len(files)} files ({sum(size for _, size, _ in files) / 2**20:.1f} MiB) from "
              f"{uri} into {entry.parent}", file=sys.stderr)
        remote.download(tmp, [name for name, _, _ in files])
        (tmp / COPIED).write_text(json.dumps({"uri": remote.uri, "files": len(files)}) + "\n")
        os.replace(tmp, entry)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (entry / COPIED).is_file():  # else another run copied it first: as good
            raise
    return entry


def load_cached(source: Source, cache_dir: str | None) -> Decoded:
    """The decoded dataset: from the cache when there, else decoded and cached."""
    entry = entry_dir(source, cache_dir)
    if (entry / "meta.json").is_file():
        try:
            return read_entry(entry)
        except (OSError, ValueError, EOFError) as err:  # what numpy raises for a truncated or garbled .npy
            print(f"fedmr-ray: warning: the cached {source.spec.name} in {entry} is damaged ({one_line(err)}); "
                  "decoding it again", file=sys.stderr)
            shutil.rmtree(entry, ignore_errors=True)
    decoded = decode(source)
    try:
        write_entry(entry, decoded, source)
    except OSError as err:  # a cache that cannot be written costs time, not correctness
        print(f"fedmr-ray: warning: cannot cache {source.spec.name} in {entry.parent} ({err}); "
              "it will be decoded again next time (see --cache-dir)", file=sys.stderr)
    return decoded


def read_entry(entry: Path) -> Decoded:
    arrays = {name: np.load(entry / f"{name}.npy", mmap_mode="r" if name.startswith("x") else None)
              for name in ARRAYS}
    users = {name: np.load(entry / f"{name}.npy") for name in USERS if (entry / f"{name}.npy").is_file()}
    return Decoded(**arrays, **users)


def write_entry(entry: Path, decoded: Decoded, source: Source) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}-", dir=entry.parent))
    try:
        for name in ARRAYS:
            np.save(tmp / f"{name}.npy", getattr(decoded, name))
        for name in USERS:
            if getattr(decoded, name) is not None:
                np.save(tmp / f"{name}.npy", getattr(decoded, name))
        meta = {"dataset": source.spec.name, "format": source.format, "root": str(source.root),
                "files": len(source.files), "version": ENTRY_VERSION}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(tmp, entry)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (entry / "meta.json").is_file():  # else another run cached it first: as good
            raise
