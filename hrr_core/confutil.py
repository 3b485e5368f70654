"""Typed, frozen config sections built from plain dicts, with errors that name the key.

Every config section in the project is a frozen dataclass. :func:`from_dict` builds one from
a mapping (as read from ``params.yaml``) and rejects unknown keys, wrong types and missing
required keys; range checks live in each dataclass's ``__post_init__`` through :func:`check`.
Supported field types: bool, int, float, str, ``Literal[...]``, ``X | None``,
``tuple[X, ...]``, ``dict[str, X]`` and nested dataclasses. A nested dataclass given as a
mapping starts from the field's own default (e.g. a generator family's ``LDMConfig``), so a
partial override keeps that section's defaults rather than the nested class's.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad value in the configuration; ``key`` is its dotted path, e.g. ``train.lr``."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}" if key else message)


def check(ok: bool, key: str, allowed: str, value: Any) -> None:
    """Raise :class:`ConfigError` for ``key`` unless ``ok``; ``allowed`` says what would do."""
    if not ok:
        raise ConfigError(key, f"got {value!r}; allowed: {allowed}")


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "", base: T | None = None) -> T:
    """Build dataclass ``cls`` from ``data``; errors name the dotted key under ``where``. Keys
    missing from ``data`` take their value from ``base`` when given, else the field default."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(where, f"expected a mapping of keys to values, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(_join(where, str(unknown[0])), f"unknown key; known keys here: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, field in fields.items():
        key = _join(where, name)
        default = getattr(base, name) if base is not None else _default(field)
        if name in data and dataclasses.is_dataclass(hints[name]) and isinstance(data[name], Mapping):
            base_value = default if default is not dataclasses.MISSING else None
            kwargs[name] = from_dict(hints[name], data[name], key, base_value)
        elif name in data:
            kwargs[name] = _coerce(data[name], hints[name], key)
        elif default is not dataclasses.MISSING:
            kwargs[name] = default
        else:
            raise ConfigError(key, "required key is missing")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(_join(where, exc.key), exc.message) from None


OMIT_IF_DEFAULT = {"omit_if_default": True}  # field metadata: see :func:`optional_field`


def optional_field(default: Any) -> Any:
    """A config field added after configs were first hashed (e.g. HRR v2's options): at its
    default it is left out of :func:`to_dict`, so the cache keys, checkpoint metas and cards of
    configs that do not set it stay exactly what they were; :func:`from_dict` accepts it as usual."""
    return dataclasses.field(default=default, metadata=OMIT_IF_DEFAULT)


def _omitted(obj: Any, f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("omit_if_default")) and getattr(obj, f.name) == f.default


def set_optional_fields(obj: Any, where: str = "") -> list[str]:
    """Dotted names of the :func:`optional_field` fields of config ``obj`` (nested dataclasses
    included) that hold a value other than their default."""
    if not dataclasses.is_dataclass(obj):
        return []
    out = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("omit_if_default") and value != f.default:
            out.append(_join(where, f.name))
        out.extend(set_optional_fields(value, _join(where, f.name)))
    return out


def to_dict(obj: Any) -> Any:
    """Plain dict/list form of a config (for checkpoints, JSON outputs and hashing); fields made
    with :func:`optional_field` are left out while they hold their default."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if not _omitted(obj, f)}
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overlay`` applied recursively (mappings merge, everything else replaces)."""
    out = dict(base)
    for k, v in overlay.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _default(field: dataclasses.Field) -> Any:
    """The field's default value (a fresh one from its factory), or ``dataclasses.MISSING``."""
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _coerce(value, option, key)
            except ConfigError as exc:
                errors.append(exc)
        where = errors[0].key if len(errors) == 1 else key  # one option (X | None): keep the nested key it named
        raise ConfigError(where, "; ".join(e.message for e in errors) + (" (or null)" if type(None) in args else ""))
    if origin is Literal:
        if value not in args:
            raise ConfigError(key, f"got {value!r}; allowed: {', '.join(repr(a) for a in args)}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"expected a list, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(key, f"expected a list of {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a mapping, got {type(value).__name__}")
        return {str(k): _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"{key}: unsupported config field type {tp!r}")
