"""The registry of step kinds. Each module of this package defines one :class:`StepType` and registers it; the
pipeline (services, the runner, the one Celery task), the results, the provenance and the downloads look a kind
up here instead of naming it, so adding a kind is one new module (and, for a site's own kinds outside this
package, a name in ``NEUROX_STEP_MODULES``)."""

from __future__ import annotations

from dataclasses import dataclass

GPU, CPU = "gpu", "cpu"  # model work (forward passes) on gpu, array work on cpu


@dataclass(frozen=True)
class Download:
    """One format a result can be downloaded in."""

    name: str  # in URLs
    label: str  # on the page
    content_type: str
    suffix: str


class StepType:
    """What the platform knows about one kind of step. Subclasses set the class attributes and ``compute``."""

    kind: str = ""  # Step.kind
    queue: str = CPU
    result_kind: str = ""  # ResultKind of what it builds
    inline: bool = False  # its result is one JSON document that clients read whole
    downloads: tuple[Download, ...] = ()
    has_selection: bool = True  # its parameters choose neuron sets and layers of a store
    request_field: str = ""  # the run request's key that asks for it; built-in kinds are planned by services

    def compute(self, step, job) -> tuple[str, dict]:
        """Build the step's result under the results folder (if it is not there yet: a redelivered step finds
        it) and return its path relative to that folder and the meta the ``Result`` row keeps."""
        raise NotImplementedError

    def origin(self, step):
        """The step whose store and commands this step's result builds on (itself, unless it follows another)."""
        return step

    def store_keys(self, step) -> list[str]:
        """The activation stores the step reads."""
        return step.params.get("store_keys") or [step.params.get("store_key")]

    def reproduce(self, prov, step, source: list[str], seed: list[str], neuron: str | None) -> None:
        """Append to ``prov.commands`` (and ``prov.notes``) the engine command lines that compute the result
        again outside the platform; ``source`` names the model and corpus, ``seed`` the seed option."""

    def clean_request(self, value):
        """For a kind with a ``request_field``: the value in its normal form (falsy: not asked for), or
        ``ValueError`` with the message for the person."""
        return value

    def plan(self, value, store_key: str, model, selection: dict, seed: int) -> list[tuple[str, dict, str]]:
        """For a kind with a ``request_field``: the (title, params, result key) of each step it adds for one
        store of the run (each needs that store's extraction)."""
        return []


_TYPES: dict[str, StepType] = {}


def register(cls: type[StepType]) -> type[StepType]:
    """Class decorator: make ``cls``'s kind known (a second registration of a kind replaces the first)."""
    if not cls.kind or not cls.result_kind:
        raise ValueError(f"{cls.__name__} needs a kind and a result_kind")
    _TYPES[cls.kind] = cls()
    return cls


def unregister(kind: str) -> None:
    _TYPES.pop(kind, None)


def step_type(kind: str) -> StepType:
    try:
        return _TYPES[kind]
    except KeyError:
        raise LookupError(f"no step type is registered for the kind {kind!r}") from None


def step_types() -> list[StepType]:
    return list(_TYPES.values())
