"""The shareable state of a workspace page, all of it in the query string (:class:`ViewState`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

POOL_LIMIT = 50  # neurons a pool (and so a URL) holds


@dataclass(frozen=True)
class ViewState:
    """The shareable state of a workspace page, all of it in the query string: a colleague with access who opens
    the same URL sees the same view. ``ranking`` is a step id of the run; ``pool`` neuron labels (``hidden:3:17``);
    ``page`` the corpus page of the activation map; ``q`` its word search; ``recipe`` a saved manipulation."""

    ranking: int | None = None
    pool: tuple[str, ...] = ()
    page: int = 1
    q: str = ""
    recipe: int | None = None
    extra: dict = field(default_factory=dict)  # other parameters a page keeps (e.g. label=, layer=)

    @classmethod
    def from_request(cls, request) -> "ViewState":
        get = request.GET
        pool = []
        for item in get.getlist("pool") + [p for v in get.getlist("pools") for p in v.split(",")]:
            item = item.strip()
            if item and item not in pool:
                pool.append(item)
        known = {"ranking", "pool", "pools", "page", "q", "recipe"}
        return cls(ranking=_positive_int(get.get("ranking")), pool=tuple(pool[:POOL_LIMIT]),
                   page=_positive_int(get.get("page")) or 1, q=get.get("q", "").strip()[:200],
                   recipe=_positive_int(get.get("recipe")),
                   extra={k: v for k, v in get.items() if k not in known})

    def with_(self, **changes) -> "ViewState":
        return replace(self, **changes)

    def query(self, **changes) -> str:
        """The query string of this state with ``changes`` (e.g. ``page=2``), for links and htmx requests."""
        state = self.with_(**{k: v for k, v in changes.items() if k in self.__dataclass_fields__})
        extra = {**state.extra, **{k: v for k, v in changes.items() if k not in self.__dataclass_fields__}}
        pairs = []
        if state.ranking:
            pairs.append(("ranking", state.ranking))
        if state.pool:
            pairs.append(("pools", ",".join(state.pool)))
        if state.page > 1:
            pairs.append(("page", state.page))
        if state.q:
            pairs.append(("q", state.q))
        if state.recipe:
            pairs.append(("recipe", state.recipe))
        pairs += [(k, v) for k, v in sorted(extra.items()) if v not in (None, "")]
        return urlencode(pairs)


def _positive_int(value) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None
