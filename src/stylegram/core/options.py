"""One mechanism for options: defaults, help, validation and serialisation, declared once per field.

Every use case takes a frozen dataclass of options that derives from :class:`Options` and declares each field
with :func:`option`::

    @dataclass(frozen=True)
    class MyOptions(Options):
        size: int = option(512, "longest side in pixels", min=16, max=16384)
        rule: Literal["a", "b"] = option("a", "which rule")

Construction checks every field against its declaration (numbers finite and within bounds, a ``Literal`` one of
its choices, tuples item by item) and then the dataclass's own :meth:`Options.problems` (checks that involve
several fields); all problems are reported together in one :class:`~stylegram.core.errors.OptionsError`.
:func:`describe` lists the fields with their kinds, so the command line derives its flags and the web app its
form fields from the same declarations; :meth:`OptionField.parse` turns the text a user typed into a value.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from .errors import OptionsError

T = TypeVar("T", bound="Options")


def option(default: Any, help: str, *, min: float | None = None, max: float | None = None,
           above: float | None = None, cli: bool = True, web: bool = True) -> Any:
    """A dataclass field with its default, one line of help, and its bounds.

    ``min``/``max`` are inclusive bounds, ``above`` an exclusive lower bound (``above=0``: positive). For tuples
    the bounds apply to every item. ``cli``/``web`` say whether the command line or the web form offers it.
    """
    meta = {"help": help, "min": min, "max": max, "above": above, "cli": cli, "web": web}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class OptionField:
    """One option as a front end sees it: its name, kind, default, help text and bounds."""

    name: str
    kind: type  # int, float, str or bool: the type of the value or of each item of a tuple
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    is_tuple: bool = False
    optional: bool = False  # None is allowed (it means "automatic" or "off")
    min: float | None = None
    max: float | None = None
    above: float | None = None
    cli: bool = True
    web: bool = True

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, text: str) -> Any:
        """The value of the text a user typed (``"3,1"`` for a tuple); raises OptionsError."""
        if self.is_tuple:
            parts = [p.strip() for p in text.split(",") if p.strip()]
            return tuple(self._scalar(p) for p in parts)
        return self._scalar(text.strip())

    def _scalar(self, text: str) -> Any:
        if self.kind is bool:
            low = text.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise OptionsError(f"{self.flag} takes true or false, got {text!r}")
        if self.kind is str:
            return text
        try:
            value = self.kind(text)
        except ValueError:
            raise OptionsError(f"{self.flag} takes {'an integer' if self.kind is int else 'a number'}, "
                               f"got {text!r}") from None
        return value

    def problems(self, value: Any) -> Iterator[str]:
        """What is wrong with ``value`` for this field (nothing when it is fine)."""
        if value is None:
            if not self.optional:
                yield f"{self.flag[2:]} must be given"
            return
        items = value if self.is_tuple else (value,)
        if self.is_tuple and not isinstance(value, tuple | list):
            yield f"{self.flag[2:]} must be a list"
            return
        for item in items:
            yield from self._item_problems(item)

    def _item_problems(self, item: Any) -> Iterator[str]:
        name = self.flag[2:]
        if self.choices is not None:
            if item not in self.choices:
                yield f"{name} must be one of {', '.join(self.choices)}, got {item!r}"
            return
        if self.kind in (int, float):
            numeric = isinstance(item, int | float) and not isinstance(item, bool)
            if not numeric or (self.kind is int and not isinstance(item, int)):
                yield f"{name} must be {'an integer' if self.kind is int else 'a number'}, got {item!r}"
                return
            if not math.isfinite(item):
                yield f"{name} must be a finite number, got {item}"
                return
            if self.min is not None and item < self.min:
                yield f"{name} must be at least {_num(self.min)}, got {_num(item)}"
            if self.max is not None and item > self.max:
                yield f"{name} must be at most {_num(self.max)}, got {_num(item)}"
            if self.above is not None and item <= self.above:
                yield f"{name} must be greater than {_num(self.above)}, got {_num(item)}"
        elif self.kind is bool and not isinstance(item, bool):
            yield f"{name} must be true or false, got {item!r}"
        elif self.kind is str and not isinstance(item, str):
            yield f"{name} must be text, got {item!r}"


def _num(x: float) -> str:
    return f"{x:g}"


class Options:
    """Base of every options dataclass (frozen): validated on construction, serialisable, described for forms."""

    def __post_init__(self) -> None:
        problems = [p for f in describe(type(self)) for p in f.problems(getattr(self, f.name))]
        if not problems:  # cross-field checks assume each field is well-formed
            problems = list(self.problems())
        if problems:
            raise OptionsError("; ".join(problems))

    def problems(self) -> Iterator[str]:
        """Checks that involve several fields; each subclass adds its own."""
        return iter(())

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples as lists), one per field."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[T], values: dict[str, Any]) -> T:
        """Options from :meth:`to_dict`'s output (lists become tuples); unknown names are an OptionsError."""
        known = {f.name: f for f in describe(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise OptionsError(f"unknown option(s): {', '.join(unknown)}")
        return cls(**{k: tuple(v) if known[k].is_tuple and isinstance(v, list) else v for k, v in values.items()})


_DESCRIBED: dict[type, tuple[OptionField, ...]] = {}


def describe(cls: type) -> tuple[OptionField, ...]:
    """The fields of an options dataclass as :class:`OptionField` records, in declaration order."""
    if cls not in _DESCRIBED:
        _DESCRIBED[cls] = _describe(cls)
    return _DESCRIBED[cls]


def _describe(cls: type) -> tuple[OptionField, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind, choices, is_tuple, optional = _kind(hints[f.name])
        m = f.metadata
        out.append(OptionField(f.name, kind, f.default, m.get("help", ""), choices, is_tuple, optional,
                               m.get("min"), m.get("max"), m.get("above"), m.get("cli", True), m.get("web", True)))
    return tuple(out)


def _kind(hint: Any) -> tuple[type, tuple[str, ...] | None, bool, bool]:
    """(item type, choices, is a tuple, None allowed) of a field's type hint."""
    optional = False
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        optional = type(None) in args
        rest = [a for a in args if a is not type(None)]
        hint = rest[0]
    is_tuple = typing.get_origin(hint) is tuple
    if is_tuple:
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) is Literal:
        choices = tuple(str(c) for c in typing.get_args(hint))
        return str, choices, is_tuple, optional
    if hint not in (int, float, str, bool):
        raise TypeError(f"option type {hint!r} is not supported")
    return hint, None, is_tuple, optional
