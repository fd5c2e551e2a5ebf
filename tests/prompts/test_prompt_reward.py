"""``[reward] scale`` and normalise_feedback: a feedback value means what it says."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from promptlab.prompts import (
    FeedbackValueError,
    PromptError,
    PromptSpec,
    RewardSpec,
    normalise_feedback,
)


def test_booleans_are_one_and_zero_on_the_default_scale_only() -> None:
    assert normalise_feedback(True, RewardSpec()) == 1.0
    assert normalise_feedback(False) == 0.0
    with pytest.raises(
        FeedbackValueError, match=r"expects a number on the scale \[1, 5\], got a boolean"
    ):
        normalise_feedback(True, RewardSpec(scale=(1, 5)))


def test_a_scale_can_be_given_as_a_pair() -> None:
    assert normalise_feedback(7, (0, 10)) == 0.7
    with pytest.raises(FeedbackValueError) as caught:
        normalise_feedback(11, (0, 10))
    assert caught.value.scale == (0.0, 10.0)


@pytest.mark.parametrize(("value", "reward"), [(1, 0.0), (5, 1.0), (3, 0.5), (4.5, 0.875)])
def test_a_star_rating_maps_linearly_onto_0_1(value: float, reward: float) -> None:
    assert normalise_feedback(value, RewardSpec(scale=(1, 5))) == reward


def test_without_a_scale_numbers_must_already_be_in_0_1() -> None:
    assert normalise_feedback(0.25, RewardSpec()) == 0.25
    with pytest.raises(
        FeedbackValueError, match=r"outside the scale \[0, 1\] \(set \[reward\] scale"
    ):
        normalise_feedback(4, RewardSpec())


@pytest.mark.parametrize("value", [0, 6, -1, 5.01])
def test_out_of_range_names_the_scale(value: float) -> None:
    with pytest.raises(FeedbackValueError, match=r"outside the scale \[1, 5\]"):
        normalise_feedback(value, RewardSpec(scale=(1, 5)))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("5", "got string"),
        (None, "got null"),
        ([1], "got array"),
        (10**401, "too large"),
        (math.nan, "got nan"),
        (math.inf, "got inf"),
    ],
)
def test_values_that_are_no_rating_raise_a_clear_error(value: object, message: str) -> None:
    with pytest.raises(FeedbackValueError, match=message) as caught:
        normalise_feedback(value, RewardSpec(scale=(1, 5)))
    assert isinstance(caught.value, PromptError) and "[1, 5]" in str(caught.value)


def test_a_prompt_can_be_passed_for_its_reward() -> None:
    spec = PromptSpec.model_validate(
        {
            "id": "p",
            "reward": {"feedback": "stars", "scale": [1, 5]},
            "variants": [{"name": "a", "model": "openai/m", "template": "hi"}],
        }
    )
    assert normalise_feedback(2, spec) == 0.25


@pytest.mark.parametrize("scale", [[5, 1], [1, 1]])
def test_a_scale_must_be_an_increasing_range(scale: list[float]) -> None:
    with pytest.raises(ValidationError, match="scale"):
        RewardSpec.model_validate({"scale": scale})
