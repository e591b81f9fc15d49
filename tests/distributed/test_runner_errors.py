"""Errors raised inside Ray tasks and actors come back as the ameli-ray error they were."""

import pytest

from ameli_ray.distributed.runner import clear_errors, user_error
from ameli_ray.errors import AmeliError, ChecksumMismatch, ObjectNotFound


class _TaskError(Exception):
    """Stands in for ray.exceptions.RayTaskError: the original exception as `cause`."""

    def __init__(self, cause):
        super().__init__("task failed")
        self.cause = cause


def test_a_task_errors_cause_is_found_through_chains():
    wrapped = RuntimeError("Ray Data failed")
    wrapped.__cause__ = _TaskError(ChecksumMismatch("kb/v1/x.npy: sha256 mismatch"))
    found = user_error(wrapped)
    assert type(found) is ChecksumMismatch and str(found) == "kb/v1/x.npy: sha256 mismatch"


def test_an_actor_constructor_error_is_read_back_from_its_folded_traceback():
    died = RuntimeError(
        "The actor died because of an error raised in its creation task, ray::MapWorker.__init__()\n"
        "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
        "ameli_ray.errors.ObjectNotFound: no KB at s3://b/kb/v9: LATEST names version 'v9'\n"
    )
    found = user_error(died)
    assert type(found) is ObjectNotFound and str(found) == "no KB at s3://b/kb/v9: LATEST names version 'v9'"
    assert user_error(RuntimeError("a Ray failure of its own")) is None


def test_clear_errors_reraises_the_users_error_and_leaves_bugs_alone():
    with pytest.raises(ChecksumMismatch, match="^bad$") as info:
        with clear_errors():
            raise RuntimeError("wrapper") from _TaskError(ChecksumMismatch("bad"))
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with pytest.raises(ZeroDivisionError):
        with clear_errors():
            1 / 0
    with pytest.raises(AmeliError, match="plain"):
        with clear_errors():
            raise AmeliError("plain")
