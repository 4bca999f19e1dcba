"""YAML read safely and within bounds, so that no manifest can exhaust the driver.

``yaml.safe_load`` builds only plain values, but it does not bound their size: anchors and aliases let a
file of a few hundred bytes stand for a billion values ("billion laughs"). PyYAML shares the aliased values,
so loading is quick, but anything that walks them (validation, an error message that shows a value, a copy)
expands them all. So the document is composed first and measured as it would expand, each shared node counted
once per use without expanding it, and refused past the limits below; only then are its values built.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import yaml

MAX_FILE_BYTES = 32 * 2**20  # a 100,000-item manifest is about 40 MB; a batch that large is a Parquet manifest
MAX_VALUES = 5_000_000  # scalars, lists and mappings after aliases expand (an item is about 30)
MAX_DEPTH = 64  # nesting of lists and mappings (an item's images are 4 deep)


class YamlRefused(ValueError):
    """A YAML file too large, too nested, whose aliases expand too far, with a key written twice in one mapping,
    or not text; the message says which."""


def compose(path: Path) -> yaml.Node | None:
    """The file's node graph (None for an empty file), within ``MAX_FILE_BYTES``, ``MAX_DEPTH`` and
    ``MAX_VALUES``, with no key twice in a mapping. Raises ``YamlRefused``, ``yaml.YAMLError`` or ``OSError``."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise YamlRefused(
            f"is {size / 2**20:.1f} MiB, over the {MAX_FILE_BYTES / 2**20:g} MiB limit for YAML; "
            "write a batch this large as a Parquet manifest."
        )
    loader = yaml.SafeLoader(_text(path.read_bytes()))
    try:
        try:
            root = loader.get_single_node()
        except RecursionError:
            raise YamlRefused(f"nests lists or mappings deeper than {MAX_DEPTH} levels.") from None
    finally:
        loader.dispose()
    if root is not None:
        _measure(root)
        _refuse_duplicate_keys(root)
    return root


BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _text(data: bytes) -> str:
    """UTF-8, or UTF-16 and UTF-8 with the byte-order mark that editors on Windows write."""
    encoding = next((name for bom, name in BOMS if data.startswith(bom)), "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise YamlRefused(
            f"is not {encoding.upper().removesuffix('-SIG')} text (byte {data[e.start]:#04x} at position {e.start}); "
            "save the manifest as UTF-8."
        ) from None


def _refuse_duplicate_keys(root: yaml.Node) -> None:
    """A key written twice in one mapping: YAML would keep the last silently, so one of the two was a mistake."""
    stack = [root]
    seen_nodes: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            lines: dict[object, int] = {}
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value in lines:
                    where = _named(node)
                    raise YamlRefused(
                        f"{where} has the key {key.value!r} twice (lines {lines[key.value]} and "
                        f"{key.start_mark.line + 1}); YAML would keep only the last. Remove one."
                    )
                if isinstance(key, yaml.ScalarNode):
                    lines[key.value] = key.start_mark.line + 1
        stack += _children(node)


def _named(mapping: yaml.MappingNode) -> str:
    """``item 'x' (line 14)`` for a mapping with an id, else ``the mapping at line 14``."""
    line = mapping.start_mark.line + 1
    ids = [v.value for k, v in mapping.value if isinstance(k, yaml.ScalarNode) and k.value == "id"]
    return f"item {ids[0]!r} (line {line})" if ids else f"the mapping at line {line}"


def construct(root: yaml.Node | None) -> Any:  # the plain values YAML holds
    """The plain values of a composed (and measured) document."""
    if root is None:
        return None
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(root)
    finally:
        loader.dispose()


def load(path: Path) -> Any:
    """``yaml.safe_load`` of the file, within the limits."""
    return construct(compose(path))


def _measure(root: yaml.Node) -> None:
    """Refuse a document deeper than ``MAX_DEPTH`` or larger than ``MAX_VALUES`` once aliases expand. Each
    node's expanded size is computed once (aliased nodes are shared), so this takes time in the file's size."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if depth > MAX_DEPTH:
            raise YamlRefused(f"nests lists or mappings deeper than {MAX_DEPTH} levels.")
        children = _children(node)
        if children_done or not children:
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[id(node)] > MAX_VALUES:
                raise YamlRefused(
                    f"expands to more than {MAX_VALUES:,} values once its anchors and aliases are filled in "
                    f"(line {node.start_mark.line + 1} alone holds {sizes[id(node)]:,}); an alias of a list of "
                    "aliases multiplies. Write the values out, or split the batch."
                )
            continue
        stack.append((node, depth, True))
        stack += [(child, depth + 1, False) for child in children if id(child) not in sizes]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
