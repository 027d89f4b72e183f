"""Form fields from option dataclasses: the page's form, the API's validation and its OpenAPI schema all come
from :func:`stylegram.core.options.describe`, so a field added to an options class (a preset, a strength) shows
up here without a line changed.

Two things are the server's own policy on top of the library's validation: caps (a client may not ask for more
pixels or evaluations than the server allows) and narrowed choices (``init`` also accepts a file path on the
command line, which a client must never name; ``model`` only offers the weights installed here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stylegram.core.errors import OptionsError
from stylegram.core.options import OptionField, Options, describe

_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean"}


@dataclass(frozen=True)
class Policy:
    """What this server allows beyond an options class's own bounds: ``caps`` (the largest value of a field,
    or of each item of a list field) and ``choices`` (the only values a field may take)."""

    caps: Mapping[str, float] = field(default_factory=dict)
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def web_fields(cls: type[Options]) -> tuple[OptionField, ...]:
    """The fields a form offers (``web=True`` in their declaration)."""
    return tuple(f for f in describe(cls) if f.web)


def field_schema(f: OptionField, policy: Policy) -> dict[str, Any]:
    """One field as the page's script builds an input for it."""
    cap = policy.caps.get(f.name)
    top = f.max if cap is None else (cap if f.max is None else min(f.max, cap))
    default = list(f.default) if isinstance(f.default, tuple) else f.default
    return {"name": f.name, "kind": f.kind.__name__, "list": f.is_tuple, "optional": f.optional,
            "default": default, "help": f.help, "choices": list(policy.choices.get(f.name, f.choices or ())) or None,
            "min": f.min, "max": top, "above": f.above}


def parse_options(cls: type[Options], form: Mapping[str, str], policy: Policy) -> Options:
    """Options from form fields named like the fields (``style_weight``); what is not sent keeps its default.

    An empty value means the default, or None ("automatic") for a field that allows it. Every problem is one
    :class:`OptionsError` with a one-line message.
    """
    known = {f.name: f for f in describe(cls)}
    unknown = sorted(k for k in form if k not in known)
    if unknown:
        raise OptionsError(f"unknown option(s): {', '.join(unknown)}")
    hidden = sorted(k for k in form if not known[k].web)
    if hidden:
        raise OptionsError(f"option(s) not offered by this server: {', '.join(hidden)}")
    values: dict[str, Any] = {}
    for name, text in form.items():
        f = known[name]
        if not text.strip():
            if f.optional:
                values[name] = None
            continue
        values[name] = f.parse(text)
    options = cls(**values)  # the library's own validation: bounds, choices, cross-field checks
    problems = list(_policy_problems(options, policy, known))
    if problems:
        raise OptionsError("; ".join(problems))
    return options


def _policy_problems(options: Options, policy: Policy, known: Mapping[str, OptionField]) -> Any:
    for name, cap in policy.caps.items():
        if name not in known:
            continue
        value = getattr(options, name)
        items = () if value is None else value if isinstance(value, tuple) else (value,)
        if any(item > cap for item in items):
            yield f"{name} must be at most {cap:g} on this server, got {_shown(value)}"
    for name, allowed in policy.choices.items():
        if name in known and getattr(options, name) not in allowed:
            yield f"{name} must be one of {', '.join(allowed)} on this server, got {getattr(options, name)!r}"


def _shown(value: Any) -> str:
    return ",".join(f"{v:g}" for v in value) if isinstance(value, tuple) else f"{value:g}"


def openapi_body(cls: type[Options], policy: Policy, max_styles: int) -> dict[str, Any]:
    """The multipart request body of ``POST /api/jobs`` for the OpenAPI page, derived like the form."""
    props: dict[str, Any] = {
        "kind": {"type": "string", "default": "gatys", "description": "gatys, or a feed-forward model's name"},
        "content": {"type": "string", "format": "binary", "description": "the photo (PNG, JPEG or WebP)"},
        "style": {"type": "array", "items": {"type": "string", "format": "binary"}, "maxItems": max_styles,
                  "description": f"one to {max_styles} paintings (repeat the field)"},
    }
    for f in web_fields(cls):
        s = field_schema(f, policy)
        prop: dict[str, Any] = {"type": "string" if f.is_tuple else _JSON_TYPES[f.kind], "description": f.help}
        if f.is_tuple:
            prop["description"] += " (comma-separated)"
        if s["default"] is not None:
            prop["default"] = ",".join(map(str, s["default"])) if f.is_tuple else s["default"]
        if s["choices"] and not f.is_tuple:
            prop["enum"] = s["choices"]
        if s["max"] is not None and not f.is_tuple:
            prop["maximum"] = s["max"]
        if s["min"] is not None and not f.is_tuple:
            prop["minimum"] = s["min"]
        props[f.name] = prop
    schema = {"type": "object", "required": ["content"], "properties": props}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}
