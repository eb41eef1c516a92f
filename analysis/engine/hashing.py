"""Content hashes, the one place that computes them: files and streams, sets of files, and JSON-able values.

* :func:`sha256_of`: streaming sha256 of a path, ``bytes`` or a file object (an upload), one chunk at a time.
* :func:`combined_sha256`: one hash for a set of named files (a model directory, an upload of several files):
  sha256 over the sorted ``name:filehash`` lines, so it does not depend on the order the files were read in.
* :func:`sha256_json`: sha256 of a value's canonical JSON (sorted keys, no spaces), for content keys built from
  hashes and parameters (an activation store's key) and for in-memory corpora.

This module imports nothing from the engine, so every other module can use it.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import IO, Iterator, Union

CHUNK_BYTES = 1 << 20

Source = Union[str, os.PathLike, bytes, bytearray, IO]


def iter_chunks(source: Source, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The raw bytes of ``source`` in chunks (text streams are encoded as UTF-8)."""
    if isinstance(source, (bytes, bytearray)):
        for start in range(0, len(source), chunk_bytes):
            yield bytes(source[start:start + chunk_bytes])
        return
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as handle:
            yield from iter_chunks(handle, chunk_bytes)
        return
    if hasattr(source, "seek"):
        try:
            source.seek(0)
        except (OSError, ValueError):
            pass  # not seekable: read from where it is
    while True:
        chunk = source.read(chunk_bytes)
        if not chunk:
            return
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8", "surrogateescape")
        yield chunk


def sha256_of(source: Source, chunk_bytes: int = CHUNK_BYTES) -> str:
    """Streaming sha256 of a path, bytes or file object (never holds more than one chunk)."""
    digest = hashlib.sha256()
    for chunk in iter_chunks(source, chunk_bytes):
        digest.update(chunk)
    return digest.hexdigest()


def combined_sha256(file_hashes: dict[str, str]) -> str:
    """One hash for a set of files: sha256 over the sorted ``name:filehash`` lines."""
    lines = "".join(f"{name}:{file_hashes[name]}\n" for name in sorted(file_hashes))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def sha256_json(value) -> str:
    """sha256 of ``value`` as canonical JSON: equal values (dicts in any key order) give equal hashes."""
    payload = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
