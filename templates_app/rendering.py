"""Render a notification type's templates with a notification's data.

Rendering only: this module knows templates and data, nothing about users or delivery.
A variable the template prints unconditionally but the data lacks is an error naming the
variable, never a silently empty string in a customer's email. Variables given a fallback
(``|default``, ``|default_if_none``) or used inside tags (``{% if %}``, ``{% for %}``) follow
Django's usual rules: missing is empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape  # what django.utils.html.escape does, minus its lazy-string check
from typing import Any, Mapping

from config.caching import ConfigCache
from django.template import Context, Engine, TemplateSyntaxError
from django.template.base import Template as DjangoTemplate
from django.template.base import TextNode, Variable, VariableNode

# A private engine: the project's TEMPLATES setting configures HTML pages, not messages.
_engine = Engine(autoescape=True)
_FALLBACK_FILTERS = {"default", "default_if_none"}

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


def _required_names(template: DjangoTemplate) -> frozenset[str]:
    """Data keys the template prints unconditionally: top-level ``{{ name... }}`` without a
    fallback filter. (Inside tags, a variable may be guarded; Django's rules apply.)"""
    names = set()
    for node in template.nodelist:
        if not isinstance(node, VariableNode):
            continue
        expression = node.filter_expression
        var = expression.var
        if not isinstance(var, Variable) or var.literal is not None or not var.lookups:
            continue
        if any(func.__name__ in _FALLBACK_FILTERS for func, _ in expression.filters):
            continue
        names.add(var.lookups[0])
    return frozenset(names)


@dataclass(frozen=True)
class CompiledField:
    key: str
    template: DjangoTemplate
    parts: tuple[tuple[bool, str], ...] | None
    required: frozenset[str] = frozenset()

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
        absent = [name for name in self.required if name not in data]
        if absent:
            missing.extend(absent)
            return ""
        return self.template.render(Context(data, autoescape=html))


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
            fields.append(CompiledField(key, compiled, _simple_parts(compiled), _required_names(compiled)))
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
