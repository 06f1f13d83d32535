"""The Retry-After header: delta seconds or an HTTP date; anything else is no answer."""

import email.utils
import time

import pytest

from flickr_assets.retry_after import retry_after_seconds


def test_retry_after_in_seconds_or_as_a_date():
    assert retry_after_seconds("7") == 7.0 and retry_after_seconds(" 120 ") == 120.0
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= retry_after_seconds(date, now=now) <= 31
    assert retry_after_seconds(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "²", "inf", "nan", "-5", "1e3", "7.5"])
def test_anything_else_is_no_answer(value):
    assert retry_after_seconds(value) is None  # "²": latin-1 header text that str.isdigit takes for a digit
