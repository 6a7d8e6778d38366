"""Rendering templates with notification data."""

import pytest
from django.core.exceptions import ValidationError

from templates_app.models import Template
from templates_app.rendering import MissingVariables, compile_template, template_catalog

pytestmark = pytest.mark.django_db


def template(**fields) -> Template:
    defaults = {"type_key": "t", "channel": "email", "subject": "Hi {{ name }}", "body": "Total {{ total }}", "html": "<p>{{ name }}</p>"}
    defaults.update(fields)
    return Template(**defaults)


def test_email_renders_subject_text_and_escaped_html():
    payload = compile_template(template()).render({"name": "<b>Ada</b> & co", "total": "5 €"})
    assert payload == {"subject": "Hi <b>Ada</b> & co", "text": "Total 5 €", "html": "<p>&lt;b&gt;Ada&lt;/b&gt; &amp; co</p>"}


def test_each_channel_gets_its_own_fields():
    data = {"name": "Ada", "total": 3, "id": 7}
    assert compile_template(template(channel="sms", subject="", html="")).render(data) == {"body": "Total 3"}
    push = compile_template(template(channel="push", html="", action_url="/o/{{ id }}")).render(data)
    assert push == {"title": "Hi Ada", "body": "Total 3", "action_url": "/o/7"}


def test_missing_variables_are_named():
    with pytest.raises(MissingVariables) as caught:
        compile_template(template()).render({"unrelated": 1})
    assert caught.value.channel == "email"
    assert caught.value.names == ["name", "total"]


def test_filters_and_conditionals_work():
    t = template(subject="{{ name|upper }}", body="{% if vip %}VIP {% endif %}{{ total|floatformat:2 }}", html="")
    assert compile_template(t).render({"name": "ada", "total": 3, "vip": True}) == {"subject": "ADA", "text": "VIP 3.00"}


def test_syntax_errors_are_reported_on_the_field():
    with pytest.raises(ValidationError) as caught:
        template(body="{% if %}").full_clean()
    assert "body" in caught.value.message_dict


def test_catalog_sees_saved_changes_at_once():
    def body():
        return template_catalog.get("welcome")["inapp"].render({})["body"]

    Template.objects.create(type_key="welcome", channel="inapp", subject="Hello", body="v1")
    assert body() == "v1"
    Template.objects.filter(type_key="welcome").update(body="v2")  # bypasses signals: cached
    assert body() == "v1"
    template_row = Template.objects.get(type_key="welcome")
    template_row.body = "v3"
    template_row.save()
    assert body() == "v3"
    assert "sms" not in template_catalog.get("welcome")
    template_catalog.clear()


FAST_PATH_CASES = [
    ("Hi {{ name }}", {"name": "Ada"}),
    ("<p>{{ name }} &amp; {{ other }}</p>", {"name": "<script>'x'</script>", "other": 'a"b&c'}),
    ("{{ a }}{{ b }}{{ a }}", {"a": "x", "b": "é ☃ 中"}),
    ("no variables at all", {}),
    ("{{ n }} items", {"n": 3}),  # int: falls back to Django
    ("{{ price }}", {"price": 2.5}),
    ("{{ flag }} / {{ nothing }}", {"flag": True, "nothing": None}),
    ("{{ items }}", {"items": ["a", "<b>"]}),
    ("{{ user.name }}", {"user": {"name": "<Z>"}}),  # dotted: Django
    ("{{ name|upper }}", {"name": "ada"}),  # filter: Django
    ("{% if name %}{{ name }}{% endif %}", {"name": "<i>"}),  # tag: Django
]


@pytest.mark.parametrize("source, data", FAST_PATH_CASES)
@pytest.mark.parametrize("html", [False, True])
def test_fast_path_renders_exactly_like_django(source, data, html):
    from django.template import Context

    from templates_app.rendering import CompiledField, _simple_parts, compile_source

    compiled = compile_source(source)
    key = "html" if html else "body"
    fast = CompiledField(key, compiled, _simple_parts(compiled)).render(data, missing := [])
    reference = compiled.render(Context(data, autoescape=html))
    assert fast == reference
    assert missing == []


def test_fast_path_is_taken_for_plain_templates_only():
    from templates_app.rendering import _simple_parts, compile_source

    assert _simple_parts(compile_source("Hi {{ name }}, see {{ url }}")) == (
        (False, "Hi "), (True, "name"), (False, ", see "), (True, "url")
    )  # fmt: skip
    for source in ("{{ a.b }}", "{{ a|lower }}", "{% if a %}x{% endif %}", '{{ "literal" }}', "{{ 5 }}"):
        assert _simple_parts(compile_source(source)) is None


def test_missing_variables_are_named_on_both_paths():
    for body in ("Hi {{ name }} {{ total }}", "Hi {{ name|upper }} {{ total.amount|floatformat:2 }}"):
        with pytest.raises(MissingVariables) as caught:
            compile_template(template(subject="", html="", body=body)).render({})
        assert caught.value.names == ["name", "total"]


def test_fallbacks_and_guarded_variables_may_be_absent():
    body = "Hi {{ name|default:'there' }}{% if order %}, order {{ order }}{% endif %}. {{ note|default_if_none:'' }}"
    assert compile_template(template(subject="", html="", body=body)).render({}) == {"text": "Hi there."}
    rendered = compile_template(template(subject="", html="", body=body)).render({"name": "Ada", "order": "A-1"})
    assert rendered == {"text": "Hi Ada, order A-1."}
