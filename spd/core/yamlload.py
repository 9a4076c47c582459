"""YAML loading that remembers the line of every key and substitutes `${...}` in string values.

Timestamps stay strings (YAML 1.1 would turn them into naive datetimes), only true/false are
booleans (no `NO` → False surprise), duplicate keys are errors, and every error is a one-line
ConfigError: `<file>: <key.path> (line N): <problem>; <what is allowed>`.

Hostile input is bounded before it costs anything: aliases may add at most MAX_ALIAS_VALUES
values to what the document itself holds (a "billion laughs" is refused at once), nesting stops
at MAX_DEPTH, a `${file:}` or `${credential:}` is read up to MAX_FILE_VALUE bytes, and what it
put into a value never appears in an error: the message names the key and the file instead.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from spd.core.errors import ConfigError

KeyPath = tuple[str | int, ...]

_DROPPED_TAGS = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value", "tag:yaml.org,2002:bool"}
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SUBST = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_ENV_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)
_CREDENTIAL_NAME = re.compile(r"[A-Za-z0-9_.-]+")
SUBST_HINT = "use ${NAME}, ${NAME:-default}, ${file:PATH} or ${credential:NAME}"
MAX_ALIAS_VALUES = 100_000  # values aliases may add by repeating anchored nodes
MAX_DEPTH = 100  # nesting levels (PyYAML composes recursively)
MAX_FILE_VALUE = 64 * 2**10  # bytes of a ${file:} or ${credential:} (a credential, a token)


class _Loader(yaml.SafeLoader):
    """SafeLoader without timestamp parsing and with YAML 1.2 booleans."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


_LIBYAML: bool = getattr(yaml, "__with_libyaml__", False)


class _FastLoader(yaml.CSafeLoader if _LIBYAML else _Loader):  # type: ignore[misc]
    """The same loader with libyaml's parser (in C, ~10 x faster; marks keep their lines), when
    PyYAML was built with it. A document it refuses is read again by `_Loader`, whose messages
    are the ones spd documents."""

    yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers


@dataclass(frozen=True)
class YamlDoc:
    """A loaded document: plain data plus the 1-based line of every key path, and what each
    `${file:}` put into a value (never to be shown in an error)."""

    file: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    from_files: dict[KeyPath, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # `${...}` that could not be substituted (the value became ""): (key path, line, problem)
    unresolved: tuple[tuple[KeyPath, int, str], ...] = ()

    def line(self, path: KeyPath) -> int | None:
        """Line of `path`, or of its longest prefix that exists (a missing key: its parent)."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def error(self, path: KeyPath, problem: str) -> ConfigError:
        """A ConfigError at `path` with its line; no content read from a `${file:}` in it."""
        problem = hide_file_values(problem, path, self.from_files)
        return ConfigError(format_error(self.file, path, self.line(path), problem))


def hide_file_values(problem: str, path: KeyPath,
                     from_files: dict[KeyPath, tuple[tuple[str, str], ...]]) -> str:
    """`problem` with the content of every `${file:}` at, above or below `path` replaced by
    `(content of ${file:NAME})`: a validator that quotes the value must not leak a secret."""
    for where, values in from_files.items():
        if where[:len(path)] != path and path[:len(where)] != where:
            continue
        for content, expr in values:
            shown = f"(content of ${{{expr}}})"
            for form in {content, json.dumps(content)[1:-1]}:
                if form.strip():
                    problem = problem.replace(form, shown)
    return problem


def format_path(path: KeyPath) -> str:
    """`("pollers", "orders", "emitters", 1)` -> `pollers.orders.emitters[1]`."""
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text


def format_error(file: str, path: KeyPath, line: int | None, problem: str) -> str:
    """The one-line error format: `<file>: <key.path> (line N): <problem>; <allowed>`."""
    where = format_path(path)
    if where and line is not None:
        where = f"{where} (line {line})"
    elif line is not None:
        where = f"line {line}"
    problem = " ".join(problem.split())  # one line whatever the source said
    return f"{file}: {where}: {problem}" if where else f"{file}: {problem}"


def load_yaml(path: Path, text: str, *, env: dict[str, str] | None = None) -> YamlDoc:
    """Parses `text` (read from `path`), substituting `${...}` relative to the file's folder."""
    file = str(path)
    loader: _Loader | None = None
    try:
        loader, node = _compose(text)
        builder = _Builder(file, loader, env if env is not None else dict(os.environ), path.parent)
        if node is not None:
            check_expansion(file, node)
        data = builder.build(node, ()) if node is not None else None
    except RecursionError:
        raise ConfigError(format_error(file, (), None, f"nested more than {MAX_DEPTH} levels "
                                                       "deep; flatten the YAML")) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(format_error(file, (), line, f"invalid YAML: {_yaml_problem(exc)}; "
                                                       "fix the YAML syntax"))
    except yaml.YAMLError as exc:
        raise ConfigError(format_error(file, (), None, f"invalid YAML: {exc}; fix the YAML syntax"))
    finally:
        if loader is not None:
            loader.dispose()
    return YamlDoc(file, data, builder.lines, builder.from_files, tuple(builder.unresolved))


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    """PyYAML's problem, with where the construct it was parsing began when that is another line:
    an unclosed `[` is reported where the parser gave up, often the line after the mistake."""
    problem = exc.problem or exc.context or "cannot be parsed"
    start, end = exc.context_mark, exc.problem_mark
    if exc.problem and exc.context and exc.context.startswith("while ") and start and end \
            and start.line != end.line:
        problem += f" ({exc.context} started on line {start.line + 1})"
    return problem


def _compose(text: str) -> tuple[_Loader, Node | None]:
    """The document's node tree and the loader that composed it: libyaml's when it can, else
    (or when it refuses the document) PyYAML's own, which raises the error to report."""
    if _LIBYAML:
        fast: _Loader = _FastLoader(text)
        try:
            return fast, fast.get_single_node()
        except yaml.YAMLError:  # the message comes from PyYAML's parser, below
            fast.dispose()
    loader = _Loader(text)  # the reader refuses control characters already here
    try:
        return loader, loader.get_single_node()
    except BaseException:
        loader.dispose()
        raise


def check_expansion(file: str, root: Node) -> None:
    """ConfigError when aliases would expand the document by more than MAX_ALIAS_VALUES values
    or it nests deeper than MAX_DEPTH; linear in the composed document, whatever it expands to."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if depth > MAX_DEPTH or key in active:
            problem = (f"nested more than {MAX_DEPTH} levels deep; flatten the YAML"
                       if depth > MAX_DEPTH else
                       "refers to itself through an alias; remove the recursive alias")
            raise ConfigError(format_error(file, (), node.start_mark.line + 1, problem))
        active.add(key)
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        total = 1 + sum(size(child, depth + 1) for child in children)
        active.discard(key)
        sizes[key] = total
        if total - len(sizes) > MAX_ALIAS_VALUES:
            raise ConfigError(format_error(
                file, (), node.start_mark.line + 1,
                f"aliases expand the document to more than {MAX_ALIAS_VALUES} extra values "
                "(a YAML bomb?); write the values out or use fewer nested aliases"))
        return total

    size(root, 0)


class _Unresolved(Exception):
    """A `${...}` that cannot be substituted."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class _Builder:
    """Turns composed nodes into dicts, lists and scalars, recording lines and substituting."""

    def __init__(self, file: str, loader: _Loader, env: dict[str, str], base: Path) -> None:
        self.file, self.loader, self.env, self.base = file, loader, env, base
        self.lines: dict[KeyPath, int] = {}
        self.from_files: dict[KeyPath, tuple[tuple[str, str], ...]] = {}
        self.unresolved: list[tuple[KeyPath, int, str]] = []
        self.stack: set[int] = set()

    def build(self, node: Node, path: KeyPath) -> Any:
        if id(node) in self.stack:
            self.fail(node, path, "refers to itself through an alias; remove the recursive alias")
        self.stack.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
            if isinstance(node, SequenceNode):
                return [self.item(child, path + (i,)) for i, child in enumerate(node.value)]
            return self.scalar(node, path)
        finally:
            self.stack.discard(id(node))

    def item(self, node: Node, path: KeyPath) -> Any:
        self.lines[path] = node.start_mark.line + 1
        return self.build(node, path)

    def mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.key(key_node, path)
            if key in seen:
                self.fail(key_node, path + (key,), f'duplicate key "{key}"; each key may appear once')
            seen.add(key)
        self.loader.flatten_mapping(node)  # `<<: *anchor` merges; the mapping's own keys win
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.key(key_node, path)
            self.lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, path + (key,))
        return out

    def key(self, node: Node, path: KeyPath) -> str:
        if not isinstance(node, ScalarNode):
            self.fail(node, path, "a key is a list or mapping; keys must be plain names")
        return str(node.value)  # the text as written: `yes:` or `1:` stay names, not booleans or numbers

    def scalar(self, node: Node, path: KeyPath) -> Any:
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, str):
            return substitute(value, lambda expr: self.resolve(expr, node, path))
        return value

    def resolve(self, expr: str, node: Node, path: KeyPath) -> str:
        try:
            return self.substitution(expr, node, path)
        except _Unresolved as exc:  # noted, and the document read on: every problem is reported
            self.unresolved.append((path, node.start_mark.line + 1, exc.problem))
            return ""

    def substitution(self, expr: str, node: Node, path: KeyPath) -> str:
        if expr.startswith("file:"):
            content = self.read_file(expr[5:].strip(), node, path)
        elif expr.startswith("credential:"):
            content = self.read_credential(expr[11:].strip(), node, path)
        else:
            return self.env_value(expr, node, path)
        self.from_files[path] = self.from_files.get(path, ()) + ((content, expr.strip()),)
        return content

    def env_value(self, expr: str, node: Node, path: KeyPath) -> str:
        match = _ENV_NAME.fullmatch(expr.strip())
        if not match:
            raise _Unresolved(f"${{{expr}}} is not a valid substitution; {SUBST_HINT}")
        name, default = match.group(1), match.group(2)
        value = self.env.get(name)
        if default is not None and not value:
            return default
        if value is None:
            raise _Unresolved(f"environment variable {name} is not set; set it, "
                              f"or give a default with ${{{name}:-default}}")
        return value

    def read_file(self, name: str, node: Node, path: KeyPath, expr: str = "") -> str:
        target = self.base / Path(name).expanduser()  # an absolute name replaces the base
        try:
            with open(target, "rb") as f:
                raw = f.read(MAX_FILE_VALUE + 1)
            if len(raw) > MAX_FILE_VALUE:
                raise _Unresolved(f"${{{expr or 'file:' + name}}}: {target} is larger than "
                                  f"{MAX_FILE_VALUE // 1024} KiB; point it at a file that "
                                  "holds only the value")
            return raw.decode("utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise _Unresolved(f"${{{expr or 'file:' + name}}}: cannot read {target}: {reason}; "
                              "point it at a readable UTF-8 file") from None

    def read_credential(self, name: str, node: Node, path: KeyPath) -> str:
        """A systemd credential (LoadCredential=): the file NAME in $CREDENTIALS_DIRECTORY."""
        if not _CREDENTIAL_NAME.fullmatch(name):
            raise _Unresolved(f"${{credential:{name}}}: {name!r} is not a credential name; "
                              "use letters, digits, _, . and -")
        directory = self.env.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise _Unresolved(f"${{credential:{name}}}: CREDENTIALS_DIRECTORY is not set; systemd "
                              "sets it from LoadCredential=, elsewhere set it to the folder of the "
                              "credential files (such as /etc/spd/credentials)")
        return self.read_file(str(Path(directory) / name), node, path, f"credential:{name}")

    def fail(self, node: Node, path: KeyPath, problem: str) -> NoReturn:
        raise ConfigError(format_error(self.file, path, node.start_mark.line + 1, problem))


def substitute(text: str, resolve: Callable[[str], str]) -> str:
    """Replaces each `${expr}` by `resolve(expr)`; `$${` is a literal `${`."""
    return _SUBST.sub(lambda m: "${" if m.group(0) == "$${" else resolve(m.group(1)), text)
