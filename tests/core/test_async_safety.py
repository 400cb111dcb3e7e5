"""Outside browser tests Django's async-safety guard stands: a synchronous database call
from async code fails in tests as it would in production."""

import asyncio
import os

import pytest
from django.core.exceptions import SynchronousOnlyOperation

from resolutionflow.models import User


def test_the_async_unsafe_switch_is_off_outside_browser_tests():
    assert "DJANGO_ALLOW_ASYNC_UNSAFE" not in os.environ


@pytest.mark.django_db
def test_a_sync_query_from_async_code_fails():
    async def count_users() -> int:
        return User.objects.count()

    with pytest.raises(SynchronousOnlyOperation):
        asyncio.run(count_users())
