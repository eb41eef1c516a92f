"""The one home of content hashes: streams, sets of files, canonical JSON."""

import hashlib
import io

from analysis.engine.hashing import combined_sha256, sha256_json, sha256_of


def test_sha256_of_streams_in_chunks(tmp_path):
    data = bytes(range(256)) * 10_000
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_of(path, chunk_bytes=4096) == hashlib.sha256(data).hexdigest()
    assert sha256_of(io.BytesIO(data)) == hashlib.sha256(data).hexdigest()
    assert sha256_of(data) == hashlib.sha256(data).hexdigest()


def test_combined_sha256_ignores_reading_order_but_not_names_or_contents():
    files = {"config.json": "a" * 64, "model.safetensors": "b" * 64}
    expected = hashlib.sha256(f"config.json:{'a' * 64}\nmodel.safetensors:{'b' * 64}\n".encode()).hexdigest()
    assert combined_sha256(files) == combined_sha256(dict(reversed(list(files.items())))) == expected
    assert combined_sha256({"other.json": "a" * 64, "model.safetensors": "b" * 64}) != expected
    assert combined_sha256({"config.json": "c" * 64, "model.safetensors": "b" * 64}) != expected


def test_sha256_json_is_canonical():
    assert sha256_json({"a": 1, "b": [1, 2]}) == sha256_json({"b": [1, 2], "a": 1})
    assert sha256_json({"a": 1, "b": [1, 2]}) != sha256_json({"a": 1, "b": [2, 1]})
    assert sha256_json(["é"]) == hashlib.sha256('["é"]'.encode()).hexdigest()
