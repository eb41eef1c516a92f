"""An engine function's options, declared once beside the function (:class:`Option`), and the one check of a
value against its declaration.

A method's or a curve's options are a tuple of Options: name, type, range, choices, default and help. The
platform derives from them what a run request may set and the messages it refuses with
(``analysis.runs.services``), the API's schema (``analysis.runs.serializers``) and the new-analysis form
(``analysis.runs.forms``); nothing there restates a range.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Sequence

def _number(value) -> str:
    """A bound in words: whole numbers in full (4294967295, not 4.29497e+09), others as ``:g`` writes them."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e16 else f"{value:g}"


TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a text"}


class OptionError(ValueError):
    """A value, or a set of options, that does not fit its declarations; the message says what fits.
    ``unknown``: the option names that are not declared at all (then the message names those)."""

    def __init__(self, message: str, unknown: Sequence[str] = ()):
        super().__init__(message)
        self.message, self.unknown = message, tuple(unknown)


@dataclass(frozen=True)
class Option:
    """One option: ``type`` is bool, int, float or str; with ``many``, a non-empty list of such values.

    The range is ``minimum`` .. ``maximum`` (either may be open: ``None``), the minimum itself excluded with
    ``above_minimum``; ``off`` is one more value outside the range that switches the option off (bootstrap 0).
    ``max_count``: the most values a list (``many``) may hold, repeats counted (each one is work for a worker).
    ``choices`` are the only values a text option takes. ``label`` names it on a form, ``example`` is a value
    to show in a message.
    """

    name: str
    type: type
    default: object
    help: str
    minimum: float | None = None
    maximum: float | None = None
    above_minimum: bool = False
    off: object = None
    choices: tuple = ()
    many: bool = False
    max_count: int | None = None
    label: str = ""
    example: str = ""

    @property
    def range(self) -> str:
        """The values that fit, in words: "from 0 to 1", "each above 0 and at most 100", "0 (none) or at least 2"."""
        if self.choices:
            return f"{'among' if self.many else 'one of'} {', '.join(map(str, self.choices))}"
        words = self.bounds
        if self.many and words:
            words = f"each {words}"
        if self.many and self.max_count:
            words = f"{self.count_words}, {words}" if words else self.count_words
        return f"{self.off!r} (none) or {words}" if self.off is not None else words

    @property
    def bounds(self) -> str:
        """The range of one number in words ("from 0 to 1", "above 0 and at most 1"), without ``off``."""
        low = None if self.minimum is None else (
            f"{'above' if self.above_minimum else 'at least'} {_number(self.minimum)}")
        high = None if self.maximum is None else f"at most {_number(self.maximum)}"
        if low and high and not self.above_minimum:
            return f"from {_number(self.minimum)} to {_number(self.maximum)}"
        return " and ".join(w for w in (low, high) if w)

    @property
    def count_words(self) -> str:
        """ "1 to 50 values" (a list option with ``max_count``), else "". """
        return f"1 to {self.max_count} values" if self.many and self.max_count else ""

    @property
    def fits(self) -> str:
        """What a value has to be: "true or false", "a number from 0 to 1", "one of mean_rank, selection_frequency"."""
        if self.type is bool:
            return TYPE_NAMES[bool]
        if self.choices:
            return f"a list {self.range}" if self.many else self.range
        kind = f"a list of {TYPE_NAMES[self.type][2:]}s" if self.many else TYPE_NAMES[self.type]
        if self.count_words:
            kind = f"{kind} ({self.count_words})"
        bounds = self.bounds
        words = f"{kind}, each {bounds}" if self.many and bounds else f"{kind} {bounds}".strip()
        return f"{self.off!r} (none) or {words}" if self.off is not None else words

    def problem(self) -> str:
        """The message for a value of this option inside an object of options: "l1 is a number from 0 to 1"."""
        return f"{self.name} is {self.fits}"

    def field_problem(self) -> str:
        """The message for a field of a request object, with its help: "random_seeds: how many …, at least 1"."""
        if self.choices:
            return f"{self.name}: choose among {', '.join(self.choices)}."
        example = f", e.g. {self.example}" if self.example else ""
        return f"{self.name}: {self.help}{', ' + self.range if self.range else ''}{example}."

    @property
    def title(self) -> str:
        """Its name for people, without the label's explanation in brackets: "λ1", "control task"."""
        short = (self.label or self.name.replace("_", " ")).split(" (")[0]
        return short[:1].lower() + short[1:]

    def accepts(self, value) -> bool:
        if self.many:
            return (isinstance(value, (list, tuple)) and bool(value)
                    and (self.max_count is None or len(value) <= self.max_count)
                    and all(self._accepts_one(v) for v in value))
        return self._accepts_one(value)

    def _accepts_one(self, value) -> bool:
        if self.off is not None and value == self.off and type(value) is type(self.off):
            return True
        if self.type is bool or isinstance(value, bool):
            return self.type is bool and isinstance(value, bool)
        if self.type is str:
            return isinstance(value, str) and (not self.choices or value in self.choices)
        if not isinstance(value, numbers.Integral if self.type is int else numbers.Real):
            return False
        return self._in_range(value)

    def _in_range(self, value) -> bool:
        above = self.minimum is None or (value > self.minimum if self.above_minimum else value >= self.minimum)
        return math.isfinite(value) and above and (self.maximum is None or value <= self.maximum)

    def clean(self, value):
        """``value`` in its normal form, or :class:`OptionError`. A number option's value becomes a float; a
        list is sorted without repeats, its values kept as sent (result keys have always held them so)."""
        if not self.accepts(value):
            raise OptionError(self.problem())
        if self.many:
            return sorted(set(value))
        return float(value) if self.type is float else value


def clean_options(given, declared: Sequence[Option], owner: str) -> dict:
    """``given`` (an object of option values) checked against ``declared``, in its normal form and sorted by
    name; or :class:`OptionError` naming the options ``owner`` does not take, else every value that does not fit."""
    if not isinstance(given, dict):
        raise OptionError("options is an object")
    by_name = {option.name: option for option in declared}
    unknown = sorted(map(str, set(given) - set(by_name)))
    if unknown:
        raise OptionError(f"{owner} takes no option {', '.join(unknown)} (options it takes: "
                          f"{', '.join(sorted(by_name)) or 'none'})", unknown)
    problems = [by_name[name].problem() for name, value in sorted(given.items())
                if not by_name[name].accepts(value)]
    if problems:
        raise OptionError("; ".join(problems))
    return {name: by_name[name].clean(value) for name, value in sorted(given.items())}


def clean_fields(given: dict, declared: Sequence[Option]) -> tuple[dict, list[str]]:
    """The declared fields of a request object (each left out: its default), in their normal form, and a
    message (:meth:`Option.field_problem`) for each that does not fit."""
    cleaned, problems = {}, []
    for option in declared:
        value = given.get(option.name, option.default)
        if option.accepts(value):
            cleaned[option.name] = option.clean(value)
        else:
            problems.append(option.field_problem())
    return cleaned, problems


def names_in_words(declared: Sequence[Option]) -> str:
    """ "percents, random_seeds and modes" """
    names = [option.name for option in declared]
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)
