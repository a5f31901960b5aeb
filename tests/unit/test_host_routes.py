"""Route templates of HTTP triggers: matching, parameters, constraints and precedence."""

import pytest

from devstack.host.routes import RouteTemplate, RouteTemplateError


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("jobs/{id}", "jobs/7", {"id": "7"}),
        ("jobs/{id}", "JOBS/7", {"id": "7"}),
        ("jobs/{id?}", "jobs", {}),
        ("jobs/{id?}", "jobs/x", {"id": "x"}),
        ("jobs/{id=5}", "jobs", {"id": "5"}),
        ("jobs/{id:int}", "jobs/-12", {"id": "-12"}),
        ("jobs/{id:int?}", "jobs", {}),
        ("files/{*path}", "files/a/b/c.txt", {"path": "a/b/c.txt"}),
        ("files/{**path}", "files", {}),
        ("f/{name}.{ext}", "f/a.b.txt", {"name": "a.b", "ext": "txt"}),
        ("{code:regex(^[a-z]{{2}}$)}", "ab", {"code": "ab"}),
        ("", "", {}),
        ("/health/", "health", {}),
    ],
)
def test_a_matching_path_yields_its_route_parameters(template: str, path: str, expected: dict[str, str]) -> None:
    # Given a parsed template / When a path is matched / Then the parameters come back
    assert RouteTemplate.parse(template).match(path) == expected


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("jobs/{id}", "jobs"),
        ("jobs/{id}", "jobs/7/extra"),
        ("jobs/{id:int}", "jobs/seven"),
        ("jobs/{id:int}", "jobs/99999999999"),
        ("jobs/{id:long}", "jobs/1.5"),
        ("jobs/{id:guid}", "jobs/not-a-guid"),
        ("jobs/{flag:bool}", "jobs/yes"),
        ("jobs/{name:alpha}", "jobs/a1"),
        ("jobs/{name:minlength(3)}", "jobs/ab"),
        ("jobs/{name:maxlength(2)}", "jobs/abc"),
        ("jobs/{name:length(2,3)}", "jobs/abcd"),
        ("jobs/{n:range(1,5)}", "jobs/6"),
        ("jobs/{n:min(2)}", "jobs/1"),
        ("{code:regex(^[a-z]{{2}}$)}", "abc"),
    ],
)
def test_a_path_that_breaks_the_template_does_not_match(template: str, path: str) -> None:
    assert RouteTemplate.parse(template).match(path) is None


def test_an_unknown_constraint_is_ignored_rather_than_failing_the_app() -> None:
    # Given a constraint this runner does not know
    template = RouteTemplate.parse("jobs/{id:nonsense}")
    # Then the parameter still matches anything
    assert template.match("jobs/anything") == {"id": "anything"}


@pytest.mark.parametrize(
    "template",
    ["files/{*path}/more", "jobs/{id}/{id}", "jobs/{id", "jobs/{a}{b}", "jobs//x", "jobs?x=1", "jobs/{1bad}"],
)
def test_a_malformed_template_is_refused(template: str) -> None:
    with pytest.raises(RouteTemplateError):
        RouteTemplate.parse(template)


def test_literal_then_constrained_then_plain_then_catch_all_take_precedence() -> None:
    # Given templates that could all match jobs/7
    templates = [RouteTemplate.parse(text) for text in ["{*rest}", "jobs/{name}", "jobs/{id:int}", "jobs/7"]]
    # When sorted by precedence
    ordered = sorted(templates, key=lambda template: template.precedence)
    # Then the most specific comes first
    assert [template.text for template in ordered] == ["jobs/7", "jobs/{id:int}", "jobs/{name}", "{*rest}"]
