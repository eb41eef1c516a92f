"""The realtime worker's model LRU: bounded by bytes, least recently used evicted first."""

from analysis.runs.realtime import ModelCache


def loader(calls, name):
    def load():
        calls.append(name)
        return name
    return load


def test_evicts_least_recently_used_by_bytes():
    sizes = {"a": 40, "b": 40, "c": 40}
    cache, calls = ModelCache(100, size_of=sizes.__getitem__), []
    cache.get("a", loader(calls, "a"))
    cache.get("b", loader(calls, "b"))
    assert cache.get("a", loader(calls, "a")) == ("a", True)  # a is now the most recent
    cache.get("c", loader(calls, "c"))  # 120 > 100: b goes, not a
    assert list(cache.entries) == ["a", "c"] and cache.total_bytes == 80
    assert cache.get("b", loader(calls, "b")) == ("b", False)
    assert calls == ["a", "b", "c", "b"] and cache.loads == 4 and cache.hits == 1


def test_a_model_larger_than_the_bound_is_kept_alone():
    cache = ModelCache(100, size_of={"small": 10, "huge": 500}.__getitem__)
    cache.get("small", lambda: "small")
    cache.get("huge", lambda: "huge")
    assert list(cache.entries) == ["huge"]
