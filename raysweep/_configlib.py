"""Typed configs from YAML: dataclasses with documented fields, ``key=value`` overrides, strict keys.

Every field is declared with :func:`doc`, whose text is the field's documentation (printed by
``raysweep config``). Loading rejects unknown keys and ill-typed values with the dotted path of the
culprit; each dataclass may check cross-field rules in ``validate()`` by raising ``ConfigError``.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from raysweep.errors import ConfigError, UserError, did_you_mean


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-5`` as a string; configs mean the number (as YAML 1.2 does)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# Dotted path -> how a boolean was written (``no``, ``off``, ...), so that a string key given an
# unquoted ``no`` can be told to quote exactly that word: once loaded, the value is just ``False``.
# Later loads overwrite the paths they set; the text only ever feeds an error message.
_BOOL_WORDS: dict[str, str] = {}


class DuplicateKeyError(yaml.YAMLError):
    """A mapping names the same key twice (YAML keeps the last silently)."""

    def __init__(self, key: str, line: int, first_line: int):
        self.key, self.line, self.first_line = key, line, first_line
        super().__init__(f"duplicate key {key!r} on line {line} (first on line {first_line})")


def load_yaml_text(text: str, prefix: str = ""):
    """Parse YAML with scientific notation read as numbers; duplicate keys raise DuplicateKeyError.

    ``prefix`` is the dotted path the document sits under (for an override's value).
    """
    data, words = _load_document(text, prefix)
    _BOOL_WORDS.update(words)
    return data


def _load_document(text: str, prefix: str = "") -> tuple[Any, dict[str, str]]:
    """The parsed document and how its booleans were spelled, by dotted path."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        words: dict[str, str] = {}
        _check_nodes(node, prefix, words)
        return loader.construct_document(node), words
    finally:
        loader.dispose()


def _check_nodes(node, path: str, words: dict[str, str], seen: frozenset = frozenset()) -> None:
    """Refuse duplicate keys under ``node``; note in ``words`` how booleans were spelled."""
    if id(node) in seen:
        return  # an alias of a node that contains it (``&a [*a]``)
    seen = seen | {id(node)}
    if isinstance(node, yaml.ScalarNode) and node.tag == _BOOL_TAG:
        words[path] = node.value
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_nodes(item, f"{path}[{i}]", words, seen)
    elif isinstance(node, yaml.MappingNode):
        first_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue  # ``<<: *base`` merges may repeat keys on purpose
            key = f"{path}.{key_node.value}" if path else key_node.value
            line = key_node.start_mark.line + 1
            if key_node.value in first_lines:
                raise DuplicateKeyError(key, line, first_lines[key_node.value])
            first_lines[key_node.value] = line
            _check_nodes(value_node, key, words, seen)


def _bool_hint(value: bool, key: str) -> tuple[str, str]:
    """(the word as written, the sentence telling to quote it) for a boolean given to a text key."""
    word = _BOOL_WORDS.get(key, "")
    if word.lower() not in (("yes", "on", "true") if value else ("no", "off", "false")):
        word = "yes" if value else "no"  # not written here (or since rewritten): the usual culprit
    return word, f"YAML reads an unquoted {word} as {str(value).lower()}; quote it: '{word}'"


def doc(help: str, default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING):
    """A dataclass field with its one-line documentation."""
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata={"help": help})
    return dataclasses.field(default=default, metadata={"help": help})


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(tp, value, key: str):
    """Check and convert ``value`` to the annotation ``tp``; raise ConfigError naming ``key``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as err:
                errors.append(err.message)
        raise ConfigError(key, "; ".join(errors))
    if origin is Literal:
        allowed = get_args(tp)
        if isinstance(value, bool) and all(isinstance(a, str) for a in allowed):
            word, hint = _bool_hint(value, key)
            either = "" if word in allowed else f", and {word!r} is not allowed either. Choose one of {list(allowed)}"
            raise ConfigError(key, f"got {str(value).lower()}: {hint}{either}")
        if value not in allowed:
            hint = did_you_mean(str(value), [str(a) for a in allowed])
            raise ConfigError(key, f"{value!r} is not allowed. {hint}Choose one of {list(allowed)}.")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"expected a list, got {value!r}")
        (item_tp, *_) = get_args(tp) or (Any,)
        return [_coerce(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping, got {value!r}")
        k_tp, v_tp = get_args(tp) or (Any, Any)
        return {_coerce(k_tp, k, key): _coerce(v_tp, v, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, bool):
            raise ConfigError(key, f"expected a string, got {str(value).lower()}: {_bool_hint(value, key)[1]}")
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    raise ConfigError(key, f"unsupported type {_type_name(tp)}")  # pragma: no cover


def from_dict(cls, data: dict, prefix: str = ""):
    """Build dataclass ``cls`` from a plain mapping, strictly."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in (data or {}).items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            hint = did_you_mean(str(key), fields)
            raise ConfigError(path, f"unknown key. {hint}Known keys: {', '.join(sorted(fields))}.")
        kwargs[key] = _coerce(hints[key], value, path)
    try:
        obj = cls(**kwargs)
    except TypeError as err:  # a required field is missing
        raise ConfigError(prefix, str(err)) from None
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate()
        except ConfigError as err:
            raise (err.under(prefix) if prefix else err) from None
    return obj


def to_dict(obj) -> Any:
    """A plain, YAML-safe copy of a config tree."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values."""
    out = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out


def set_dotted(tree: dict, dotted: str, value) -> None:
    """Set ``tree["a"]["b"] = value`` for ``dotted="a.b"``, creating mappings on the way."""
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(dotted, f"cannot set a key under {part!r}, which is not a mapping")
        node = nxt
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.lr=3e-5"`` -> ``("train.lr", 3e-05)``; the value is read as YAML."""
    if "=" not in text:
        raise UserError(f"override {text!r}: expected key=value, for example train.lr=3e-5")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise UserError(f"override {text!r}: the key is empty; write key=value")
    try:
        value = load_yaml_text(raw, prefix=key) if raw.strip() else ""
    except DuplicateKeyError as err:
        raise UserError(f"override {text!r}: key {err.key!r} appears twice; keep one") from None
    except yaml.YAMLError:
        value = raw
    return key, value


def deep_merge(base: dict, extra: dict) -> dict:
    """Recursive merge; values from ``extra`` win."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path, _seen: tuple = ()) -> dict:
    """Read a YAML config, resolving its ``include:`` list (paths relative to the configs root).

    Included files are merged first, in order; the including file's keys win.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} not found; pass a path to a YAML file (see configs/)")
    if path.resolve() in _seen:
        raise UserError(f"config file {path}: include cycle through {path.name}")
    try:
        data, bool_words = _load_document(_read_utf8(path))
    except DuplicateKeyError as err:
        raise UserError(
            f"config file {path} line {err.line}: duplicate key {err.key!r} (first on line {err.first_line}); "
            "YAML would keep only the last, so keep one"
        ) from None
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        where = f" line {line + 1}" if line is not None else ""
        raise UserError(f"config file {path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    if data is None or data == {}:
        raise UserError(f"config file {path} is empty (no keys, at most comments); give at least one section or include")
    if not isinstance(data, dict):
        raise UserError(f"config file {path}: expected a mapping of sections at the top level")
    includes = data.pop("include", []) or []
    if isinstance(includes, str):
        includes = [includes]
    merged: dict = {}
    for inc in includes:
        inc_path = _resolve_include(path, inc)
        merged = deep_merge(merged, read_yaml(inc_path, _seen + (path.resolve(),)))
    _BOOL_WORDS.update(bool_words)  # after the includes', as this file's keys win
    return deep_merge(merged, data)


def _read_utf8(path: Path) -> str:
    """The file's text; anything but UTF-8 (a BOM allowed) is one line naming the file."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise UserError(
            f"config file {path} line {line}: not UTF-8 text (byte 0x{data[err.start]:02x}); config files must be "
            "UTF-8: re-save it as UTF-8"
        ) from None


def _resolve_include(path: Path, inc: str) -> Path:
    """Includes are relative to the including file, else to the nearest ``configs/`` folder above it."""
    candidate = path.parent / inc
    if candidate.is_file():
        return candidate
    for parent in path.resolve().parents:
        if parent.name == "configs" and (parent / inc).is_file():
            return parent / inc
    raise UserError(f"config file {path}: include {inc!r} not found next to it or under configs/")
