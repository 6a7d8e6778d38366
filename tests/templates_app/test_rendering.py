"""Rendering templates with notification data: what the payload can be trusted to hold."""

import pytest
from django.core.exceptions import ValidationError
from django.template import Context

from templates_app.models import Template
from templates_app.rendering import (
    TemplateDataError,
    _simple_parts,
    compile_field,
    compile_source,
    compile_template,
    is_safe_url,
    template_catalog,
)

pytestmark = pytest.mark.django_db


def template(**fields) -> Template:
    defaults = {"type_key": "t", "channel": "email", "subject": "Hi {{ name }}", "body": "Total {{ total }}", "html": "<p>{{ name }}</p>"}
    defaults.update(fields)
    return Template(**defaults)


def render(channel="inapp", data=None, **fields):
    defaults = {"subject": "", "html": "", "body": "x"}
    defaults.update(fields)
    return compile_template(template(channel=channel, **defaults)).render(data or {})


def problems(channel="inapp", data=None, **fields) -> list[tuple[str, str]]:
    with pytest.raises(TemplateDataError) as caught:
        render(channel, data, **fields)
    return [(p.path, p.code) for p in caught.value.problems]


def test_email_renders_subject_text_and_escaped_html():
    payload = compile_template(template()).render({"name": "<b>Ada</b> & co", "total": "5 €"})
    assert payload == {"subject": "Hi <b>Ada</b> & co", "text": "Total 5 €", "html": "<p>&lt;b&gt;Ada&lt;/b&gt; &amp; co</p>"}


def test_each_channel_gets_its_own_fields():
    data = {"name": "Ada", "total": 3, "id": 7}
    assert compile_template(template(channel="sms", subject="", html="")).render(data) == {"body": "Total 3"}
    push = compile_template(template(channel="push", html="", action_url="/o/{{ id }}")).render(data)
    assert push == {"title": "Hi Ada", "body": "Total 3", "action_url": "/o/7"}


def test_each_missing_variable_is_named():
    assert problems("email", {"unrelated": 1}, subject="Hi {{ name }}", body="Total {{ total }}") == [
        ("name", "missing_variable"),
        ("total", "missing_variable"),
    ]


def test_missing_variables_are_named_on_both_paths():
    for body in ("Hi {{ name }} {{ total }}", "Hi {{ name|upper }} {{ total.amount|floatformat:2 }}"):
        named = {path for path, code in problems(body=body) if code == "missing_variable"}
        assert named in ({"name", "total"}, {"name", "total.amount"})


def test_filters_and_conditionals_work():
    t = template(subject="{{ name|upper }}", body="{% if vip %}VIP {% endif %}{{ total|floatformat:2 }}", html="")
    assert compile_template(t).render({"name": "ada", "total": 3, "vip": True}) == {"subject": "ADA", "text": "VIP 3.00"}


def test_fallbacks_and_guarded_variables_may_be_absent():
    body = "Hi {{ name|default:'there' }}{% if order %}, order {{ order }}{% endif %}. {{ note|default_if_none:'' }}"
    assert render(body=body) == {"body": "Hi there."}
    assert render(body=body, data={"name": "Ada", "order": "A-1"}) == {"body": "Hi Ada, order A-1."}


# --- what a user must never read ----------------------------------------------------------


@pytest.mark.parametrize("value, word", [(None, "null"), ({"id": 1}, "object"), (["a", "b"], "list")])
def test_a_printed_null_object_or_list_is_a_problem_naming_the_variable(value, word):
    with pytest.raises(TemplateDataError) as caught:
        render(body="Order {{ order_id }} has shipped", data={"order_id": value})
    (problem,) = caught.value.problems
    assert (problem.path, problem.code) == ("order_id", "unprintable_value")
    assert word in problem.message


def test_nested_printed_values_are_checked_too():
    assert problems(body="{% if a %}{{ a.b }}{% endif %}", data={"a": {"b": None}}) == [("a.b", "unprintable_value")]
    assert render(body="{{ tags|join:', ' }} ({{ tags|length }})", data={"tags": ["a", "b"]}) == {"body": "a, b (2)"}


def test_control_characters_cannot_add_header_lines_to_a_subject():
    payload = render("email", {"name": "Ada\r\nBcc: victim@example.com\x00"}, subject="Hi {{ name }}", body="b")
    assert payload["subject"] == "Hi Ada Bcc: victim@example.com"
    assert "\r" not in payload["subject"] and "\n" not in payload["subject"]


def test_titles_are_one_line_and_text_keeps_only_tabs_and_newlines():
    payload = render("push", {"t": "A\u2028B\x1bC", "b": "line1\r\nline2\x07\tend"}, subject="{{ t }}", body="{{ b }}")
    assert payload == {"title": "A B C", "body": "line1\nline2\tend"}
    assert render("sms", {"b": "x\x0b\x0cy"}, body="{{ b }}") == {"body": "xy"}


@pytest.mark.parametrize(
    "value, url",
    [
        ("42", "/orders/42"),
        ("../admin", "/orders/..%2Fadmin"),
        ("..", "/orders/%2E%2E"),
        ("1?admin=true#x", "/orders/1%3Fadmin%3Dtrue%23x"),
        ("a b/c", "/orders/a%20b%2Fc"),
    ],
)
def test_variables_inside_a_link_are_encoded_as_one_component(value, url):
    assert render(data={"id": value}, action_url="/orders/{{ id }}")["action_url"] == url


def test_a_link_variable_that_starts_the_url_may_be_a_whole_url_but_only_http_or_relative():
    link = "{{ url }}"
    assert render(data={"url": "https://shop.example/o/1?x=1"}, action_url=link)["action_url"] == "https://shop.example/o/1?x=1"
    assert render(data={"url": "/orders/1"}, action_url=link)["action_url"] == "/orders/1"
    for bad in ("javascript:alert(1)", "JavaScript:alert(1)", "//evil.example/x", "/\\evil.example", "data:text/html,x", "java\nscript:x"):
        assert problems(data={"url": bad}, action_url=link) == [("url", "unsafe_url")], bad


def test_links_rendered_by_the_engine_are_encoded_too():
    payload = render(data={"id": "1/../x", "kind": "a?b"}, action_url="/o/{{ id }}{% if kind %}/{{ kind }}{% endif %}")
    assert payload["action_url"] == "/o/1%2F..%2Fx/a%3Fb"


def test_safe_urls():
    assert all(map(is_safe_url, ["", "/a", "a/b", "https://x.example", "http://x.example/p?q#f", "?page=2"]))
    assert not any(map(is_safe_url, ["javascript:x", "https:///nohost", "//x.example", "/a b", "ftp://x.example"]))


# --- templates as staff save them ----------------------------------------------------------


def test_syntax_errors_are_reported_on_the_field():
    with pytest.raises(ValidationError) as caught:
        template(body="{% if %}").full_clean()
    assert "body" in caught.value.message_dict


def test_a_link_template_must_be_http_or_relative():
    with pytest.raises(ValidationError) as caught:
        template(channel="inapp", html="", action_url="javascript:go({{ id }})").full_clean()
    assert "action_url" in caught.value.message_dict
    template(channel="inapp", html="", action_url="/orders/{{ id }}").full_clean()
    template(channel="inapp", html="", action_url="{{ url }}").full_clean()


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


# --- the fast path ---------------------------------------------------------------------------

# Plain {{ name }} templates with string values: the fast path renders them without the engine.
FAST_PATH_CASES = [
    ("Hi {{ name }}", {"name": "Ada"}),
    ("<p>{{ name }} &amp; {{ other }}</p>", {"name": "<script>'x'</script>", "other": 'a"b&c'}),
    ("{{ a }}{{ b }}{{ a }}", {"a": "x", "b": "é ☃ 中"}),
    ("no variables at all", {}),
    ("{{ q }}", {"q": "\"quotes\" & 'apostrophes' <tags>"}),
]


@pytest.mark.parametrize("source, data", FAST_PATH_CASES)
@pytest.mark.parametrize("key", ["body", "html"])
def test_fast_path_renders_exactly_like_django_without_the_engine(source, data, key, monkeypatch):
    field = compile_field(key, source)
    assert field.parts is not None
    reference = field.template.render(Context(data, autoescape=key == "html"))

    def engine_used(*args, **kwargs):
        raise AssertionError("the fast path called the template engine")

    monkeypatch.setattr(field.template, "render", engine_used)
    found: list = []
    expected = reference.strip() if key == "body" else reference  # text fields are trimmed
    assert field.render(data, found) == expected
    assert found == []


# Values the fast path hands to the engine (Django's number and boolean formatting).
ENGINE_CASES = [("{{ n }} items", {"n": 3}, "3 items"), ("{{ price }}", {"price": 2.5}, "2.5"), ("{{ flag }}", {"flag": True}, "True")]


@pytest.mark.parametrize("source, data, expected", ENGINE_CASES)
def test_non_string_values_are_formatted_by_django(source, data, expected):
    assert compile_field("body", source).render(data, []) == expected


def test_fast_path_is_taken_for_plain_templates_only():
    assert _simple_parts(compile_source("Hi {{ name }}, see {{ url }}")) == (
        (False, "Hi "), (True, "name"), (False, ", see "), (True, "url")
    )  # fmt: skip
    for source in ("{{ a.b }}", "{{ a|lower }}", "{% if a %}x{% endif %}", '{{ "literal" }}', "{{ 5 }}"):
        assert _simple_parts(compile_source(source)) is None
