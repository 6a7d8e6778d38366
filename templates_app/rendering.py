"""Render a notification type's templates with a notification's data.

Rendering only: this module knows templates and data, nothing about users or delivery.
A variable the template uses but the data lacks is an error naming the variable, never a
silently empty string in a customer's email.
"""

from __future__ import annotations

import re
from html import escape  # what django.utils.html.escape does, minus its lazy-string check
from dataclasses import dataclass
from typing import Any, Mapping

from config.caching import ConfigCache
from django.template import Context, Engine, TemplateSyntaxError
from django.template.base import Template as DjangoTemplate
from django.template.base import TextNode, Variable, VariableNode

_MISSING = "\x00missing:%s\x00"
_MISSING_RE = re.compile("\x00missing:(.*?)\x00")

# A private engine: the project's TEMPLATES setting configures HTML pages, not messages.
_engine = Engine(string_if_invalid=_MISSING, autoescape=True)

# What each channel's payload holds, and from which template field.
_CHANNEL_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "email": (("subject", "subject"), ("text", "body"), ("html", "html")),
    "sms": (("body", "body"),),
    "push": (("title", "subject"), ("body", "body"), ("action_url", "action_url")),
    "inapp": (("title", "subject"), ("body", "body"), ("action_url", "action_url")),
}
_HTML_FIELDS = {"html"}


class MissingVariables(ValueError):
    def __init__(self, channel: str, names: list[str]):
        self.channel = channel
        self.names = sorted(set(names))
        super().__init__(f"template for {channel} needs {', '.join(self.names)}")


def compile_source(source: str) -> DjangoTemplate:
    """Compile one template field; raises TemplateSyntaxError with Django's message."""
    return _engine.from_string(source)


def _simple_parts(template: DjangoTemplate) -> tuple[tuple[bool, str], ...] | None:
    """``((is_variable, text_or_name), ...)`` when the template is only text and plain
    ``{{ name }}`` variables (the common case); None when it needs the full engine."""
    parts = []
    for node in template.nodelist:
        if isinstance(node, TextNode):
            parts.append((False, node.s))
        elif isinstance(node, VariableNode):
            expression = node.filter_expression
            var = expression.var
            if expression.filters or not isinstance(var, Variable) or var.literal is not None:
                return None
            if len(var.lookups) != 1:
                return None
            parts.append((True, var.lookups[0]))
        else:
            return None
    return tuple(parts)


@dataclass(frozen=True)
class CompiledField:
    key: str
    template: DjangoTemplate
    parts: tuple[tuple[bool, str], ...] | None

    def render(self, data: Mapping[str, Any], missing: list[str]) -> str:
        html = self.key in _HTML_FIELDS
        if self.parts is not None:
            # Fast path, equal to Django's output for string values (tested against it):
            # a plain variable renders as the string, escaped in HTML.
            out = []
            for is_variable, text in self.parts:
                if not is_variable:
                    out.append(text)
                    continue
                value = data.get(text, _ABSENT)
                if value is _ABSENT:
                    missing.append(text)
                elif type(value) is str:
                    out.append(escape(value) if html else value)
                else:
                    break  # numbers, lists...: Django's formatting rules apply
            else:
                return "".join(out)
        text = self.template.render(Context(data, autoescape=html))
        if "\x00" in text:
            missing.extend(_MISSING_RE.findall(text))
        return text


_ABSENT = object()


@dataclass(frozen=True)
class CompiledTemplate:
    type_key: str
    channel: str
    fields: tuple[CompiledField, ...]

    def render(self, data: Mapping[str, Any]) -> dict[str, str]:
        payload: dict[str, str] = {}
        missing: list[str] = []
        for field in self.fields:
            text = field.render(data, missing)
            payload[field.key] = text if field.key in _HTML_FIELDS else text.strip()
        if missing:
            raise MissingVariables(self.channel, missing)
        return payload


def compile_template(template) -> CompiledTemplate:
    """Compile a ``templates_app.models.Template`` row for fast repeated rendering."""
    fields = []
    for key, source_field in _CHANNEL_FIELDS[template.channel]:
        source = getattr(template, source_field)
        if source:
            compiled = compile_source(source)
            fields.append(CompiledField(key, compiled, _simple_parts(compiled)))
    return CompiledTemplate(template.type_key, template.channel, tuple(fields))


def validate_sources(**sources: str) -> dict[str, str]:
    """Syntax errors per field name, for forms and the admin."""
    errors = {}
    for name, source in sources.items():
        if source:
            try:
                compile_source(source)
            except TemplateSyntaxError as exc:
                errors[name] = str(exc)
    return errors


def _load_templates(type_key: str) -> dict[str, CompiledTemplate]:
    from templates_app.models import Template

    return {row.channel: compile_template(row) for row in Template.objects.filter(type_key=type_key)}


# Compiled templates per notification type: template_catalog.get(type_key) -> {channel: ...}
template_catalog: ConfigCache[dict[str, CompiledTemplate]] = ConfigCache(_load_templates, maxsize=4096)


def render_channel(type_key: str, channel: str, data: Mapping[str, Any]) -> dict[str, str] | None:
    """The rendered payload for one channel, or None when the type has no template for it."""
    compiled = template_catalog.get(type_key).get(channel)
    return None if compiled is None else compiled.render(data)


def channels_with_templates(type_key: str) -> frozenset[str]:
    return frozenset(template_catalog.get(type_key))
