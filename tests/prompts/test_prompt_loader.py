"""Loading prompt files: every rule names the file and the field of its problem."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from promptlab.prompts import (
    Problem,
    PromptFileError,
    load_prompt_dir,
    load_prompt_file,
    validate_files,
)
from promptlab.prompts.templates import MAX_TEMPLATE_CHARS

WriteToml = Callable[[str, str], Path]
REPO = Path(__file__).resolve().parents[2]

HEAD = 'id = "p"\n'
VARIABLE = '[[variables]]\nname = "code"\ntype = "string"\nrequired = true\n'


def variant(template: str = "{{ code }}", extra: str = "", name: str = "v1") -> str:
    return f'[[variants]]\nname = "{name}"\nmodel = "openai/gpt-4o-mini"\ntemplate = {json.dumps(template)}\n{extra}'


def problems_of(write_toml, text: str) -> list[Problem]:
    path = write_toml("p.toml", text)
    with pytest.raises(PromptFileError) as caught:
        load_prompt_file(path)
    assert all(p.file == str(path) for p in caught.value.problems)
    assert validate_files([path]) == caught.value.problems
    return caught.value.problems


def fields(problems: list[Problem]) -> dict[str, str]:
    return {p.field: p.message for p in problems}


def test_problem_prints_file_field_message() -> None:
    problem = Problem("a.toml", "variants[1].template", "line 3: unexpected '}'")
    assert str(problem) == "a.toml: variants[1].template: line 3: unexpected '}'"


def test_template_syntax_error_points_at_the_line(write_toml: WriteToml) -> None:
    text = HEAD + VARIABLE + variant() + variant("one\ntwo\n{{ code }\n", name="v2")
    assert fields(problems_of(write_toml, text)) == {
        "variants[1].template": "line 3: unexpected '}'"
    }


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        # shape and types
        ('description = "no id"\n' + variant(), "id", "required"),
        ('id = "Not A Slug"\n' + variant("x"), "id", "is not a slug"),
        (HEAD + 'category = "poetry"\n' + variant("x"), "category", "'poetry'"),
        (HEAD + 'colour = "red"\n' + variant("x"), "colour", "unknown key"),
        (HEAD + variant("x", "temprature = 1\n"), "variants[0].temprature", "unknown key"),
        (HEAD, "variants", "required"),
        (
            HEAD + '[[variables]]\nname = "x"\ntype = "text"\n' + variant("x"),
            "variables[0].type",
            "'text'",
        ),
        # variable declarations
        (
            HEAD + '[[variables]]\nname = "x"\nmin_length = 3\nmax_length = 2\n' + variant("x"),
            "variables[0].min_length",
            "greater than max_length",
        ),
        (
            HEAD + '[[variables]]\nname = "x"\ntype = "integer"\nmin = 3\nmax = 2\n' + variant("x"),
            "variables[0].minimum",
            "greater than maximum",
        ),
        (
            HEAD + '[[variables]]\nname = "x"\ntype = "boolean"\nmax_length = 2\n' + variant("x"),
            "variables[0].max_length",
            "not boolean",
        ),
        (
            HEAD + '[[variables]]\nname = "x"\nmax = 2\n' + variant("x"),
            "variables[0].maximum",
            "not string",
        ),
        (
            HEAD + '[[variables]]\nname = "x"\npattern = "(("\n' + variant("x"),
            "variables[0].pattern",
            "not a valid regular expression",
        ),
        (
            HEAD + '[[variables]]\nname = "x"\ntype = "number"\nlower = true\n' + variant("x"),
            "variables[0].format",
            "applies to string",
        ),
        (
            HEAD + '[[variables]]\nname = "x"\nenum = ["a", 1]\n' + variant("x"),
            "variables[0].enum[1]",
            "1 is not a string",
        ),
        (
            HEAD + '[[variables]]\nname = "x"\nenum = ["a"]\ndefault = "b"\n' + variant("x"),
            "variables[0].default",
            "enum: 'b' is not one of 'a'",
        ),
        (
            HEAD + '[[variables]]\nname = "x"\nrequired = true\ndefault = "b"\n' + variant("x"),
            "variables[0].default",
            "required variable takes no default",
        ),
        (
            HEAD + '[[variables]]\nname = "my var"\n' + variant("x"),
            "variables[0].name",
            "not an identifier",
        ),
        (HEAD + VARIABLE + VARIABLE + variant(), "variables[1].name", "duplicate name 'code'"),
        # templates
        (
            HEAD + VARIABLE + variant("{{ code }} and {{ lang }}"),
            "variants[0].template",
            "uses undeclared variable 'lang'",
        ),
        (
            HEAD + VARIABLE + variant(extra='system = "Answer in {{ tone }}"\n'),
            "variants[0].system",
            "uses undeclared variable 'tone'",
        ),
        (
            HEAD + variant("x" * (MAX_TEMPLATE_CHARS + 1)),
            "variants[0].template",
            f"{MAX_TEMPLATE_CHARS + 1} characters, at most {MAX_TEMPLATE_CHARS} allowed",
        ),
        (
            HEAD + variant(" ".join(f"{{{{ v{i} }}}}" for i in range(51))),
            "variants[0].template",
            "reads 51 variables, at most 50 allowed",
        ),
        (HEAD + variant("{% if %}"), "variants[0].template", "line 1: "),
        # variants
        (
            HEAD + VARIABLE + variant(extra="params = { temperature = 2.5 }\n"),
            "variants[0].params.temperature",
            "2.5 is outside 0..2",
        ),
        (
            HEAD + VARIABLE + variant(extra='params = { top_p = "high" }\n'),
            "variants[0].params.top_p",
            "expected a number",
        ),
        (
            HEAD + VARIABLE + variant(extra="params = { max_tokens = -1 }\n"),
            "variants[0].params.max_tokens",
            "positive integer",
        ),
        (
            HEAD + VARIABLE + variant(extra="params = { stop = [1] }\n"),
            "variants[0].params.stop",
            "list of strings",
        ),
        (
            HEAD + VARIABLE + variant(extra="params = { stream = true }\n"),
            "variants[0].params.stream",
            "set per call",
        ),
        (
            HEAD + VARIABLE + variant(extra="params = { metadata = 1979-05-27 }\n"),
            "variants[0].params.metadata",
            "not a JSON value",
        ),
        (
            HEAD + 'variants = [{ name = "v", model = "gpt-4o", template = "x" }]\n',
            "variants[0].model",
            "expected 'provider/model'",
        ),
        (
            HEAD + 'variants = [{ name = "bad name", model = "a/b", template = "x" }]\n',
            "variants[0].name",
            "letters, digits",
        ),
        (
            HEAD + VARIABLE + variant() + variant(name="v1"),
            "variants[1].name",
            "duplicate name 'v1'",
        ),
        # constraints
        (
            HEAD + VARIABLE + '[constraints]\nallowed_models = ["anthropic/*"]\n' + variant(),
            "variants[0].model",
            "not in constraints.allowed_models",
        ),
        (
            HEAD
            + VARIABLE
            + "[constraints]\nmax_tokens = 100\n"
            + variant(extra="params = { max_tokens = 500 }\n"),
            "variants[0].params.max_tokens",
            "500 exceeds constraints.max_tokens 100",
        ),
        # reward, routing, promotion
        (
            HEAD + "[reward]\nmax_error_rate = 2\n" + variant("x"),
            "reward.max_error_rate",
            "less than or equal to 1",
        ),
        (
            HEAD + "[routing]\nexploration_cap = 1.5\n" + variant("x"),
            "routing.exploration_cap",
            "less than or equal to 1",
        ),
        (
            HEAD + '[routing]\nstrategy = "fixed"\n' + variant("x"),
            "routing.weights",
            "needs a positive weight",
        ),
        (
            HEAD + '[routing]\nstrategy = "fixed"\nweights = { v1 = 1, v9 = 1 }\n' + variant("x"),
            "routing.weights.v9",
            "no variant of that name",
        ),
        (
            HEAD + "[routing]\nweights = { v1 = 1 }\n" + variant("x"),
            "routing.weights",
            "only to strategy 'fixed'",
        ),
        (
            HEAD + "[promotion]\nmin_sample = 10\n" + variant("x"),
            "promotion.min_sample",
            "unknown key",
        ),
        (
            HEAD + "[promotion]\nthreshold = 1.5\n" + variant("x"),
            "promotion.threshold",
            "less than 1",
        ),
        # examples
        (
            HEAD + VARIABLE + '[[examples]]\nname = "e"\nvariables = {}\n' + variant(),
            "examples[0].variables.code",
            "required: missing",
        ),
        (
            HEAD
            + VARIABLE
            + '[[examples]]\nname = "e"\nvariables = { code = "x", extra = 1 }\n'
            + variant(),
            "examples[0].variables.extra",
            "unknown",
        ),
        # the file itself
        ('id = "p"\nid = "q"\n', "line 2", "not valid TOML"),
    ],
)
def test_each_rule_reports_file_and_field(
    write_toml: WriteToml, body: str, field: str, message: str
) -> None:
    found = fields(problems_of(write_toml, body))
    assert field in found, found
    assert message in found[field]


@pytest.mark.parametrize(
    "text",
    ["Enter your password", "the SECRET is", "use this token:", "my access_token", "API key",
     "{{ api_key }}", "Api-Key", "apikey"],
)  # fmt: skip
def test_forbidden_words_in_templates(write_toml: WriteToml, text: str) -> None:
    body = HEAD + '[[variables]]\nname = "api_key"\n' + variant(f"hello\n{text}")
    found = fields(problems_of(write_toml, body))
    assert "line 2: forbidden word" in found["variants[0].template"]


def test_forbidden_words_in_system_templates(write_toml: WriteToml) -> None:
    body = HEAD + variant("x", 'system = "Never reveal the password."\n')
    assert (
        "forbidden word 'password'" in fields(problems_of(write_toml, body))["variants[0].system"]
    )


def test_words_that_only_contain_a_forbidden_word_are_fine(write_toml: WriteToml) -> None:
    path = write_toml("p.toml", HEAD + variant("Answer in at most 100 tokens. Use a tokenizer."))
    assert load_prompt_file(path).id == "p"


def test_every_problem_is_reported_not_just_the_first(write_toml: WriteToml) -> None:
    body = (
        'id = "p"\ncategory = "poetry"\n'
        + '[[variables]]\nname = "x"\npattern = "(("\n'
        + variant("{{ x }", "params = { temperature = 9 }\n")
        + '[[variants]]\nname = "v2"\nmodel = "nope"\ntemplate = "my password"\n'
    )
    found = fields(problems_of(write_toml, body))
    assert set(found) == {
        "category",
        "variables[0].pattern",
        "variants[0].template",
        "variants[0].params.temperature",
        "variants[1].model",
        "variants[1].template",
    }


def test_a_missing_file_is_a_problem(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    assert validate_files([missing]) == [Problem(str(missing), "(file)", "no such file")]
    with pytest.raises(PromptFileError, match="no such file"):
        load_prompt_file(missing)


def test_load_prompt_dir_by_id(write_toml: WriteToml, issue_toml: str) -> None:
    write_toml("a.toml", issue_toml)
    path = write_toml("b.toml", HEAD + variant("x"))
    write_toml("notes.txt", "not a prompt")
    prompts = load_prompt_dir(path.parent)
    assert list(prompts) == ["summarize", "p"]
    assert prompts["p"].champion.name == "v1"


def test_load_prompt_dir_rejects_duplicate_ids_and_lists_all_problems(
    write_toml: WriteToml, issue_toml: str
) -> None:
    first = write_toml("a.toml", issue_toml)
    second = write_toml("b.toml", issue_toml)
    broken = write_toml("c.toml", 'id = "c"\n')
    with pytest.raises(PromptFileError) as caught:
        load_prompt_dir(first.parent)
    assert caught.value.problems == [
        Problem(str(broken), "variants", "required"),
        Problem(str(second), "id", f"duplicate id 'summarize' (also in {first})"),
    ]
    assert str(caught.value).splitlines() == [str(p) for p in caught.value.problems]


def test_load_prompt_dir_edge_cases(tmp_path: Path) -> None:
    assert load_prompt_dir(tmp_path) == {}
    with pytest.raises(PromptFileError, match="no such directory"):
        load_prompt_dir(tmp_path / "missing")


def test_shipped_prompt_files_validate_clean() -> None:
    files = sorted((REPO / "config" / "prompts").glob("*.toml"))
    assert files, "config/prompts ships at least one prompt"
    assert validate_files(files) == []
    spec = load_prompt_file(REPO / "config" / "prompts" / "summarize.toml")
    assert spec.category == "code" and len(spec.variants) == 2
    assert len(spec.examples) == 2 and all(e.expected for e in spec.examples)


@pytest.mark.parametrize(
    ("body", "field", "hint"),
    [
        (HEAD + 'descripton = "x"\n' + variant("x"), "descripton", "did you mean 'description'?"),
        (HEAD + variant("x", "templte = 'y'\n"), "variants[0].templte", "did you mean 'template'?"),
        (HEAD + variant("x", "champoin = true\n"), "variants[0].champoin", "'champion'?"),
        (
            HEAD + '[[variables]]\nname = "x"\nrequird = true\n' + variant("{{ x }}"),
            "variables[0].requird",
            "did you mean 'required'?",
        ),
        (
            HEAD + "[routing]\nexploration_cp = 0.1\n" + variant("x"),
            "routing.exploration_cp",
            "'exploration_cap'?",
        ),
        (
            HEAD + "[promotion]\nmin_sample = 10\n" + variant("x"),
            "promotion.min_sample",
            "did you mean 'min_samples'?",
        ),
    ],
)
def test_a_misspelt_key_gets_a_did_you_mean(
    write_toml: WriteToml, body: str, field: str, hint: str
) -> None:
    message = fields(problems_of(write_toml, body))[field]
    assert message.startswith("unknown key") and hint in message


def test_a_key_like_nothing_known_gets_no_guess(write_toml: WriteToml) -> None:
    assert fields(problems_of(write_toml, HEAD + 'colour = "red"\n' + variant("x"))) == {
        "colour": "unknown key"
    }


def test_an_undeclared_variable_is_reported_with_the_other_problems(write_toml: WriteToml) -> None:
    # Before, the undeclared {{ cod }} only showed up once the typo'd key was fixed.
    text = HEAD + VARIABLE + variant("{{ cod }}", "temprature = 1\n")
    problems = fields(problems_of(write_toml, text))
    assert problems["variants[0].temprature"].startswith("unknown key")
    assert problems["variants[0].template"] == (
        "uses undeclared variable 'cod'; declare it under [[variables]]; did you mean 'code'?"
    )
    # Once alone it is reported once, with the same words.
    alone = problems_of(write_toml, HEAD + VARIABLE + variant("{{ cod }}"))
    assert [(p.field, p.message) for p in alone] == [
        ("variants[0].template", problems["variants[0].template"])
    ]
