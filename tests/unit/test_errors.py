"""``SizeRejected``: a ValueError everywhere, also Dynamo's InvalidArgument inside Dynamo.

No Dynamo here: the Dynamo modules are FAKE modules put into ``sys.modules``
(``tests/host/test_size_rejected_in_dynamo.py`` uses the real ones).
"""

from __future__ import annotations

import sys
import types

import pytest
from size_messages import rejection_problems

from omni_sizefix.runtime import sizing

DYNAMO_MODULES = ("dynamo", "dynamo._core", "dynamo.llm", "dynamo.llm.exceptions")


@pytest.fixture
def no_dynamo(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in DYNAMO_MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(sizing, "_host_class", None)


def fake_dynamo(monkeypatch: pytest.MonkeyPatch, invalid_argument: type) -> None:
    """FAKE ``dynamo._core`` (the runtime is loaded) and ``dynamo.llm.exceptions``."""
    monkeypatch.setattr(sizing, "_host_class", None)
    monkeypatch.setitem(sys.modules, "dynamo._core", types.ModuleType("dynamo._core"))
    exceptions = types.ModuleType("dynamo.llm.exceptions")
    exceptions.InvalidArgument = invalid_argument  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dynamo.llm.exceptions", exceptions)


class FakeInvalidArgument(Exception):
    """Stands in for ``dynamo._core.InvalidArgument`` (an Exception subclass)."""


def test_outside_dynamo_it_is_a_plain_value_error_and_imports_nothing(no_dynamo) -> None:
    exc = sizing.SizeRejected("no")
    assert type(exc) is sizing.SizeRejected and isinstance(exc, ValueError)
    assert not any(name in sys.modules for name in DYNAMO_MODULES)


def test_inside_dynamo_it_is_also_invalid_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dynamo(monkeypatch, FakeInvalidArgument)
    with pytest.raises(FakeInvalidArgument) as caught:
        sizing.apply(700, 1000)  # the policy's own raise site
    exc = caught.value
    assert isinstance(exc, sizing.SizeRejected) and isinstance(exc, ValueError)
    assert not rejection_problems(str(exc), 700, 1000), str(exc)
    assert type(exc).__name__ == "SizeRejected"
    try:  # callers that catch ValueError keep catching it
        raise sizing.SizeRejected("again")
    except ValueError as again:
        assert type(again) is type(exc)  # the class is built once


def test_a_class_that_cannot_be_combined_leaves_a_value_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_dynamo(monkeypatch, OSError)  # instance lay-out conflicts with ValueError
    exc = sizing.SizeRejected("no")
    assert type(exc) is sizing.SizeRejected and not isinstance(exc, OSError)


def test_a_release_without_invalid_argument_leaves_a_value_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_dynamo(monkeypatch, FakeInvalidArgument)
    monkeypatch.delattr(sys.modules["dynamo.llm.exceptions"], "InvalidArgument")
    assert type(sizing.SizeRejected("no")) is sizing.SizeRejected


def test_pickles_with_message_and_class_outside_dynamo(no_dynamo) -> None:
    import pickle

    back = pickle.loads(pickle.dumps(sizing.SizeRejected("size 1000x1000 no")))
    assert isinstance(back, sizing.SizeRejected) and isinstance(back, ValueError)
    assert str(back) == "size 1000x1000 no"


def test_pickles_with_message_and_class_inside_dynamo(monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    fake_dynamo(monkeypatch, FakeInvalidArgument)
    back = pickle.loads(pickle.dumps(sizing.SizeRejected("size 1000x1000 no")))
    assert isinstance(back, sizing.SizeRejected) and isinstance(back, FakeInvalidArgument)
    assert str(back) == "size 1000x1000 no"
