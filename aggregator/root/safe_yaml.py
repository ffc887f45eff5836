"""PyYAML, bounded: config.yaml is read by every command, so no document may cost more
than its size suggests.

YAML aliases share a node, so a 430-byte "billion laughs" document composes to a few
dozen nodes but stands for hundreds of millions: anything that walks it (a repr in an
error message, a driver's own loader) pays for all of them. The loader below counts the
document as if every alias were expanded and refuses it when aliases add more than
MAX_CONFIG_ALIAS_NODES nodes, before anything is constructed. It uses libyaml's parser
when PyYAML has it (about 10x faster), the pure-Python one otherwise.

Importing this module does not import yaml: bounded_loader() does, when a config.yaml
section must really be read.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from aggregator.limits import MAX_CONFIG_ALIAS_NODES

if TYPE_CHECKING:
    from yaml import CSafeLoader, SafeLoader
    from yaml.nodes import Node

#: Sizes are counted up to this and no further: the numbers stay machine-sized even for a
#: document whose expansion is astronomically large (it is refused all the same).
_SATURATED = 1 << 62


class AliasExpansionError(Exception):
    """Valid YAML that servo-agg refuses to expand (an alias bomb or a recursive alias);
    `line` is 1-based, when known."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line


def _children(node: Node) -> list[Node] | None:
    """The nodes inside a collection; None for a scalar."""
    from yaml.nodes import MappingNode, SequenceNode

    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return None


def check_alias_expansion(root: Node, limit: int = MAX_CONFIG_ALIAS_NODES) -> None:
    """Raise AliasExpansionError when expanding every alias would add more than `limit`
    nodes to the document (or never end: an alias inside the node it names).

    One pass over the composed nodes, each sized once (an alias is the node it names, so
    its size is looked up, not recounted): linear in the document as written.
    """
    sizes: dict[int, int] = {}  # id(node) -> nodes in it, every alias expanded
    open_nodes: set[int] = set()  # the nodes whose children are being sized
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children is None:
            sizes[key] = 1
        elif children_done:
            open_nodes.discard(key)
            sizes[key] = min(_SATURATED, 1 + sum(sizes[id(child)] for child in children))
        elif key in open_nodes:
            raise AliasExpansionError("an alias refers to a node that contains it (a "
                                      "recursive structure, which would expand forever)",
                                      node.start_mark.line + 1)
        elif key not in sizes:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
    added = sizes[id(root)] - len(sizes)
    if added > limit:
        shown = "more than 10^18" if sizes[id(root)] >= _SATURATED else f"{added:,}"
        raise AliasExpansionError(f"its aliases stand for {shown} more nodes than it has "
                                  f"as written (at most {limit:,} are allowed: an alias "
                                  "bomb?)")


class DuplicateKeyError(Exception):
    """A key written twice in one mapping of a section servo-agg owns: yaml, or the name
    servo-agg makes of it, would keep the second without a word. `path` is the key's
    dotted path, by the name it is read as; lines are 1-based; `written` holds the two
    spellings when they differ (`10` and `"10"`: one driver name)."""

    def __init__(self, path: str, first_line: int, second_line: int,
                 written: tuple[str, str] | None = None) -> None:
        super().__init__(path)
        self.path = path
        self.first_line = first_line
        self.second_line = second_line
        self.written = written


_MERGE_TAG = "tag:yaml.org,2002:merge"  # `<<: *defaults`: overridden on purpose, no duplicate


def _key_text(node: Node) -> str | None:
    """A mapping key as written, when it is a scalar (None for a collection key)."""
    from yaml.nodes import ScalarNode

    return str(node.value) if isinstance(node, ScalarNode) else None


def _spelling(node: Node) -> str:
    """A scalar key as it stands in the file, its quotes included."""
    style = getattr(node, "style", None)  # a scalar's quoting: ' or " (None: plain)
    quote = style if style in ("'", '"') else ""
    return f"{quote}{node.value}{quote}"


def check_duplicate_keys(root: Node, section: str,
                         value_of: Callable[[Node], Hashable] = _key_text) -> None:
    """Raise DuplicateKeyError for the first key written twice in one mapping anywhere in
    the top-level `section` (or for `section` itself written twice). Other sections belong
    to the drivers and are not judged. Each node is visited once (aliases share them).

    Two keys are one when the values `value_of` builds of them are equal (`16` and `0x10`,
    `1` and `true`: yaml keeps the second) or read as the same name (`10` and `"10"`:
    servo-agg names drivers, groups and keys by str())."""
    from yaml.nodes import MappingNode, SequenceNode

    if not isinstance(root, MappingNode):
        return
    stack: list[tuple[Node, str]] = []
    first: int | None = None
    for key, value in root.value:
        if _key_text(key) == section:
            if first is not None:
                raise DuplicateKeyError(section, first, key.start_mark.line + 1)
            first = key.start_mark.line + 1
            stack.append((value, section))
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(node.value))
        elif isinstance(node, MappingNode):
            by_value: dict[Hashable, tuple[Node, str]] = {}
            by_name: dict[str, tuple[Node, str]] = {}
            for key, value in node.value:
                name = _key_text(key)
                if name is not None and key.tag != _MERGE_TAG:
                    built = value_of(key)
                    name = str(built)
                    earlier = by_value.get(built, by_name.get(name))
                    if earlier is not None:  # named as the first: yaml keeps its key
                        spelled = (_spelling(earlier[0]), _spelling(key))
                        raise DuplicateKeyError(
                            f"{path}.{earlier[1]}", earlier[0].start_mark.line + 1,
                            key.start_mark.line + 1,
                            spelled if len(set(spelled)) > 1 else None)
                    by_value[built] = by_name[name] = (key, name)
                stack.append((value, f"{path}.{name}"))


_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_TEXT_TAG = "tag:yaml.org,2002:str"
#: In a path of `as_written`, any key.
ANY_KEY = "*"


def take_as_written(root: Node, section: str, paths: tuple[tuple[str, ...], ...]) -> None:
    """Make each plain number at one of `paths` inside the top-level `section` (keys from
    the section down, ANY_KEY matching any) text as it is written: a name such as `group:
    010` is "010", where yaml would read the octal 8 (`0x10` 16, `1_0` 10, `1e1` 10.0)."""
    from yaml.nodes import MappingNode, ScalarNode

    def walk(node: Node, path: tuple[str, ...]) -> None:
        if not path:
            if isinstance(node, ScalarNode) and node.tag in _NUMBER_TAGS and not node.style:
                node.tag = _TEXT_TAG  # node.value is the scalar's text as written
            return
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if path[0] == ANY_KEY or _key_text(key) == path[0]:
                    walk(value, path[1:])

    for path in paths:
        walk(root, (section, *path))


@functools.cache
def bounded_loader(section: str | None = None, as_written: tuple[tuple[str, ...], ...] = (),
                   ) -> type[CSafeLoader | SafeLoader]:
    """yaml's safe loader (libyaml's when there is one) that checks the alias expansion
    before constructing anything, and, when `section` is given, that no key is written
    twice in it (yaml's own loader keeps the last one silently) and that the numbers at
    the paths `as_written` are taken as the text they are written as (take_as_written)."""
    try:
        from yaml import CSafeLoader as Base
    except ImportError:  # PyYAML built without libyaml
        from yaml import SafeLoader as Base  # type: ignore[assignment]

    class BoundedSafeLoader(Base):
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            # Every alias is written `*name`: text without a `*` has none to count.
            self._may_alias = "*" in stream

        def get_single_data(self) -> Any:
            node = self.get_single_node()
            if node is None:
                return None
            if self._may_alias:
                check_alias_expansion(node)
            if section is not None:
                check_duplicate_keys(node, section, self.construct_object)
                take_as_written(node, section, as_written)
            return self.construct_document(node)

    return BoundedSafeLoader
