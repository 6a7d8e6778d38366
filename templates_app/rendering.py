"""Render a notification type's templates with a notification's data.

Rendering only: this module knows templates and data, nothing about users or delivery.

What a rendered payload can be trusted to hold, whatever the data:

* A variable printed unconditionally that the data lacks is a problem naming it
  (``data.order_id``), never an empty string in a customer's message. Variables with a
  fallback (``|default``, ``|default_if_none``) or inside tags follow Django's rules.
* A printed ``null``, object or list is a problem naming it: nobody should read
  ``Order None has shipped`` or a Python repr.
* One-line fields (an email subject, a push or in-app title) hold no control characters: a
  CR/LF in the data cannot add a mail header. Text bodies keep only tabs and newlines.
* URL fields percent-encode every variable as one URL component (``../``, ``?``, ``#``
  cannot change the link), except a variable that starts the URL, which may be a whole URL;
  the result must be an ``http(s)`` or relative URL (no ``javascript:``, no ``//host``).
* HTML is autoescaped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape  # what django.utils.html.escape does, minus its lazy-string check
from typing import Any
from urllib.parse import quote, urlsplit

from django.template import Context, Engine, TemplateSyntaxError
from django.template.base import Template as DjangoTemplate
from django.template.base import TextNode, Variable, VariableNode

from config.caching import ConfigCache

# A private engine: the project's TEMPLATES setting configures HTML pages, not messages.
_engine = Engine(autoescape=True)
_FALLBACK_FILTERS = {"default", "default_if_none"}

# What each channel's payload holds, and from which template field.
CHANNEL_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "email": (("subject", "subject"), ("text", "body"), ("html", "html")),
    "sms": (("body", "body"),),
    "push": (("title", "subject"), ("body", "body"), ("action_url", "action_url")),
    "inapp": (("title", "subject"), ("body", "body"), ("action_url", "action_url")),
}
HTML = "html"
LINE = "line"
TEXT = "text"
URL = "url"
_KINDS = {"html": HTML, "subject": LINE, "title": LINE, "text": TEXT, "body": TEXT, "action_url": URL}

# Control characters (C0, DEL, C1) and the Unicode line/paragraph separators.
_LINE_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_TEXT_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_URL_FORBIDDEN = re.compile("[\x00-\x20\x7f-\x9f\\\\]")


@dataclass(frozen=True, slots=True)
class DataProblem:
    path: str  # within data: "name", "order.id"; "" for the data as a whole
    code: str
    message: str


class TemplateDataError(ValueError):
    """The data cannot render this channel's template; one problem per variable."""

    def __init__(self, channel: str, problems: list[DataProblem]):
        self.channel = channel
        self.problems = problems
        super().__init__("; ".join(f"{p.path or 'data'}: {p.message}" for p in problems))


def compile_source(source: str) -> DjangoTemplate:
    """Compile one template field; raises TemplateSyntaxError with Django's message."""
    return _engine.from_string(source)


# --- what a compiled field knows about its variables ------------------------------------


def _plain_variable(node) -> tuple[str, ...] | None:
    """The lookups of ``{{ a.b }}`` without filters; None for anything else."""
    if not isinstance(node, VariableNode):
        return None
    expression = node.filter_expression
    var = expression.var
    if expression.filters or not isinstance(var, Variable) or var.literal is not None or not var.lookups:
        return None
    return tuple(var.lookups)


def _simple_parts(template: DjangoTemplate) -> tuple[tuple[bool, str], ...] | None:
    """``((is_variable, text_or_name), ...)`` when the template is only text and plain
    ``{{ name }}`` variables (the common case); None when it needs the full engine."""
    parts = []
    for node in template.nodelist:
        if isinstance(node, TextNode):
            parts.append((False, node.s))
            continue
        lookups = _plain_variable(node)
        if lookups is None or len(lookups) != 1:
            return None
        parts.append((True, lookups[0]))
    return tuple(parts)


def _required_paths(template: DjangoTemplate) -> tuple[tuple[str, ...], ...]:
    """Variables printed unconditionally: top-level ``{{ a.b }}`` without a fallback filter.
    (Inside tags a variable may be guarded; Django's rules apply there.)"""
    paths = []
    for node in template.nodelist:
        if not isinstance(node, VariableNode):
            continue
        expression = node.filter_expression
        var = expression.var
        if not isinstance(var, Variable) or var.literal is not None or not var.lookups:
            continue
        if any(func.__name__ in _FALLBACK_FILTERS for func, _ in expression.filters):
            continue
        paths.append(tuple(var.lookups))
    return tuple(dict.fromkeys(paths))


def _printed_paths(template: DjangoTemplate) -> tuple[tuple[str, ...], ...]:
    """Every ``{{ a.b }}`` printed without a filter, at any depth (a filter such as
    ``|length`` or ``|join`` is the author saying how to print a list)."""
    paths = [_plain_variable(node) for node in template.nodelist.get_nodes_by_type(VariableNode)]
    return tuple(dict.fromkeys(path for path in paths if path))


def _leading_variable(template: DjangoTemplate) -> str | None:
    nodes = template.nodelist
    if nodes and isinstance(nodes[0], VariableNode):
        var = nodes[0].filter_expression.var
        if isinstance(var, Variable) and var.lookups:
            return var.lookups[0]
    return None


_ABSENT = object()


def _resolve(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = data
    for part in path:
        if isinstance(value, dict):
            value = value.get(part, _ABSENT)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _ABSENT
        if value is _ABSENT:
            return _ABSENT
    return value


def _unprintable(value: Any) -> str | None:
    if value is None:
        return "is null; the template prints it"
    if isinstance(value, dict):
        return "is an object; the template prints it (print one of its fields)"
    if isinstance(value, list):
        return "is a list; the template prints it (use a filter such as |join:\", \")"
    return None


# --- cleaning what was rendered ----------------------------------------------------------


def clean_line(text: str) -> str:
    if text.isprintable():  # the common case, checked in C: no control character at all
        return text.strip()
    return _LINE_UNSAFE.sub(" ", text).strip()


def clean_text(text: str) -> str:
    if text.isprintable():
        return text.strip()
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _TEXT_UNSAFE.sub("", text).strip()


def encode_component(value: str) -> str:
    """One URL component: every reserved character encoded; '.' and '..' cannot climb."""
    if value and value.strip(".") == "":
        return value.replace(".", "%2E")
    return quote(value, safe="")


def _encode_values(value: Any, keep: str | None = None) -> Any:
    if isinstance(value, str):
        return encode_component(value)
    if isinstance(value, dict):
        return {k: (v if k == keep else _encode_values(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode_values(v) for v in value]
    return value


def is_safe_url(url: str) -> bool:
    """An ``http(s)`` URL with a host, or a relative reference that is not ``//host``."""
    if not url:
        return True
    if _URL_FORBIDDEN.search(url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme:
        return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)
    return not url.startswith("//") and not parts.netloc


# --- compiled fields and templates ---------------------------------------------------------


@dataclass(frozen=True)
class CompiledField:
    key: str
    template: DjangoTemplate
    parts: tuple[tuple[bool, str], ...] | None
    required: tuple[tuple[str, ...], ...] = ()
    printed: tuple[tuple[str, ...], ...] = ()
    leading: str | None = None  # URL fields: the variable that starts the URL, if any
    kind: str = TEXT
    # A link whose fixed text is a safe URL and whose every variable is encoded as one
    # component cannot become unsafe, whatever the data: no need to check each render.
    safe_by_construction: bool = False

    def render(self, data: Mapping[str, Any], problems: list[DataProblem]) -> str:
        kind = self.kind
        if self.parts is not None:
            text = self._render_fast(data, problems, kind)
        else:
            text = self._render_engine(data, problems, kind)
        if text is None:
            return ""
        if kind == LINE:
            return clean_line(text)
        if kind == TEXT:
            return clean_text(text)
        if kind == URL:
            text = text.strip()
            if not self.safe_by_construction and not is_safe_url(text):
                problems.append(
                    DataProblem(
                        self.leading or "",
                        "unsafe_url",
                        f"makes {self.key} a link that is neither an http(s) URL nor a relative one",
                    )
                )
                return ""
        return text

    def _render_fast(self, data, problems, kind) -> str | None:
        # Equal to Django's output for string values (tested against it): a plain variable
        # renders as the string, escaped in HTML. Anything else takes the engine.
        out = []
        failed = False
        for index, (is_variable, text) in enumerate(self.parts):
            if not is_variable:
                out.append(text)
                continue
            value = data.get(text, _ABSENT)
            if value is _ABSENT:
                problems.append(DataProblem(text, "missing_variable", "is required by the template"))
                failed = True
                continue
            if type(value) is not str:
                problem = _unprintable(value)
                if problem:
                    problems.append(DataProblem(text, "unprintable_value", problem))
                    failed = True
                    continue
                return self._render_engine(data, problems, kind)
            if kind == HTML:
                value = escape(value)
            elif kind == URL and index > 0:
                value = encode_component(value)
            out.append(value)
        return None if failed else "".join(out)

    def _render_engine(self, data, problems, kind) -> str | None:
        failed = False
        for path in self.required:
            if _resolve(data, path) is _ABSENT:
                problems.append(DataProblem(".".join(path), "missing_variable", "is required by the template"))
                failed = True
        for path in self.printed:
            problem = _unprintable(_resolve(data, path))
            if problem:
                problems.append(DataProblem(".".join(path), "unprintable_value", problem))
                failed = True
        if failed:
            return None
        if kind == URL:
            data = _encode_values(dict(data), keep=self.leading)
        return self.template.render(Context(data, autoescape=kind == HTML))


@dataclass(frozen=True)
class CompiledTemplate:
    type_key: str
    channel: str
    fields: tuple[CompiledField, ...]

    def render(self, data: Mapping[str, Any]) -> dict[str, str]:
        payload: dict[str, str] = {}
        problems: list[DataProblem] = []
        for field in self.fields:
            payload[field.key] = field.render(data, problems)
        if problems:
            unique = list({(p.path, p.code): p for p in problems}.values())
            raise TemplateDataError(self.channel, unique)
        return payload


def compile_field(key: str, source: str) -> CompiledField:
    compiled = compile_source(source)
    kind = _KINDS[key]
    parts = _simple_parts(compiled)
    leading = _leading_variable(compiled) if kind == URL else None
    sample = _sample_url(compiled) if kind == URL else None
    return CompiledField(
        key,
        compiled,
        parts,
        _required_paths(compiled),
        _printed_paths(compiled),
        leading,
        kind,
        safe_by_construction=parts is not None and leading is None and sample is not None and is_safe_url(sample),
    )


def compile_template(template) -> CompiledTemplate:
    """Compile a ``templates_app.models.Template`` row for fast repeated rendering."""
    fields = []
    for key, source_field in CHANNEL_FIELDS[template.channel]:
        source = getattr(template, source_field)
        if source:
            fields.append(compile_field(key, source))
    return CompiledTemplate(template.type_key, template.channel, tuple(fields))


def validate_sources(**sources: str) -> dict[str, str]:
    """Problems per template field name, for forms and the admin: syntax errors, and a link
    whose fixed part is not an http(s) or relative URL."""
    errors = {}
    for name, source in sources.items():
        if not source:
            continue
        try:
            compiled = compile_source(source)
        except TemplateSyntaxError as exc:
            errors[name] = str(exc)
            continue
        if name == "action_url":
            sample = _sample_url(compiled)
            if sample is not None and not is_safe_url(sample):
                errors[name] = "must be an http(s) URL or a relative link such as /orders/{{ order_id }}"
    return errors


def _sample_url(compiled: DjangoTemplate) -> str | None:
    """The URL with each variable replaced by a harmless sample, for checking its fixed text."""
    parts = _simple_parts(compiled)
    if parts is None:
        return None
    leading_sample = "https://example.com"
    return "".join(
        (leading_sample if index == 0 else "x") if is_variable else text
        for index, (is_variable, text) in enumerate(parts)
    ).strip()


def _load_templates(type_key: str) -> dict[str, CompiledTemplate]:
    from templates_app.models import Template

    return {row.channel: compile_template(row) for row in Template.objects.filter(type_key=type_key)}


# Compiled templates per notification type: template_catalog.get(type_key) -> {channel: ...}
template_catalog: ConfigCache[dict[str, CompiledTemplate]] = ConfigCache(_load_templates, maxsize=4096)
