"""A Griffe extension for the API page: classes whose docstring is assigned, ``__doc__ = NAME``.

The `StabilityMonitor` keeps its long docstring beside its options (``STABILITY_DOC`` in
``lightning_stability/callbacks/stability_options.py``) and says ``__doc__ = STABILITY_DOC``. Griffe reads the
source without running it, so it would see no docstring: no description, no Args/Attributes/Raises on the page,
and no warning for a documented parameter that does not exist. This extension gives such a class the string the
name refers to, once the package is loaded, so the docstring is rendered and checked like any other.

Loaded by mkdocstrings through ``extensions:`` in mkdocs.yml; ``exclude_docs`` keeps it out of the site.
"""

from __future__ import annotations

import ast
import inspect
from typing import Any

from griffe import Attribute, Class, Docstring, Extension, GriffeLoader, Module, Object


class DocAssignments(Extension):
    """Resolve ``__doc__ = NAME`` in the classes of a loaded package."""

    def on_package(self, *, pkg: Module, loader: GriffeLoader, **kwargs: Any) -> None:
        for cls in _classes(pkg):
            assigned = cls.members.get("__doc__")
            if cls.docstring is not None or not isinstance(assigned, Attribute) or assigned.value is None:
                continue
            text, lineno = _string_value(pkg, assigned)
            if text is not None:
                cls.docstring = Docstring(
                    inspect.cleandoc(text),
                    lineno=lineno,
                    parent=cls,
                    parser=loader.docstring_parser,
                    parser_options=loader.docstring_options,
                )
            cls.del_member("__doc__")


def _classes(obj: Object) -> list[Class]:
    found: list[Class] = []
    for member in obj.members.values():
        if member.is_alias:
            continue
        if isinstance(member, Class):
            found.append(member)
        if isinstance(member, (Module, Class)):
            found.extend(_classes(member))
    return found


def _string_value(pkg: Module, attribute: Attribute) -> tuple[str | None, int | None]:
    """The string a ``__doc__`` assignment names (a literal, or a module-level constant holding one)."""
    value = attribute.value
    source = value if isinstance(value, str) else None
    lineno = attribute.lineno
    if source is None:
        path = getattr(value, "canonical_path", None)
        try:
            target = pkg.modules_collection[path] if path else None
        except KeyError:
            target = None
        if target is None or target.is_alias or not isinstance(target, Attribute) or target.value is None:
            return None, None
        source, lineno = str(target.value), target.lineno
    try:
        text = ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return None, None
    return (text, lineno) if isinstance(text, str) else (None, None)
