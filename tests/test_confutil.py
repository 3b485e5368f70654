from dataclasses import dataclass, field
from typing import Literal

import pytest

from hrr_core.confutil import ConfigError, check, deep_merge, from_dict, to_dict


@dataclass(frozen=True)
class Inner:
    lr: float = 0.1
    kind: Literal["a", "b"] = "a"

    def __post_init__(self):
        check(self.lr > 0, "lr", "> 0", self.lr)


@dataclass(frozen=True)
class Outer:
    name: str
    steps: int = 3
    sizes: tuple[int, ...] = (64,)
    pair: tuple[int, int] = (1, 2)
    maybe: float | None = None
    inner: Inner = field(default_factory=Inner)
    extra: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    inner: Inner = field(default_factory=lambda: Inner(lr=0.5, kind="b"))
    outer: Outer = field(default_factory=lambda: Outer(name="fam", inner=Inner(lr=0.25)))


def test_partial_nested_override_starts_from_the_field_default():
    cfg = from_dict(Family, {"inner": {"lr": 2}, "outer": {"steps": 9, "inner": {"kind": "b"}}})
    assert cfg.inner == Inner(lr=2.0, kind="b")  # kind from the field default, not Inner's "a"
    assert cfg.outer == Outer(name="fam", steps=9, inner=Inner(lr=0.25, kind="b"))
    assert from_dict(Family, {}) == Family()
    assert from_dict(Outer, {"name": "x", "inner": {"kind": "b"}}).inner == Inner(kind="b")


def test_builds_nested_and_coerces():
    cfg = from_dict(Outer, {"name": "x", "sizes": [64, 96], "inner": {"lr": 1}, "extra": {"a": 1}})
    assert cfg.sizes == (64, 96) and cfg.inner.lr == 1.0 and isinstance(cfg.inner.lr, float)
    assert to_dict(cfg)["sizes"] == [64, 96]


@pytest.mark.parametrize(
    "data, key, words",
    [
        ({"name": "x", "stepz": 1}, "stepz", "unknown key"),
        ({"name": "x", "inner": {"lrr": 1}}, "inner.lrr", "unknown key"),
        ({"name": "x", "steps": "3"}, "steps", "integer"),
        ({"name": "x", "steps": True}, "steps", "integer"),
        ({"name": "x", "inner": {"lr": -1}}, "inner.lr", "> 0"),
        ({"name": "x", "inner": {"kind": "c"}}, "inner.kind", "'a', 'b'"),
        ({"name": "x", "sizes": [64, "a"]}, "sizes[1]", "integer"),
        ({"name": "x", "pair": [1]}, "pair", "2 values"),
        ({"name": "x", "maybe": "no"}, "maybe", "number"),
        ({}, "name", "required"),
    ],
)
def test_errors_name_the_key(data, key, words):
    with pytest.raises(ConfigError) as info:
        from_dict(Outer, data)
    assert info.value.key == key
    assert words in str(info.value)


def test_deep_merge_overrides_leaves_only():
    assert deep_merge({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}, "d": 1}
