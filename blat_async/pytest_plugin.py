"""A pytest plugin with the ``fake_blat_server`` fixture.

The fixture is a [`FakeBlatServer`][blat_async.testing.FakeBlatServer] running in a
background thread, so it serves sync tests and async ones alike, under any
event loop plugin or none:

```python
def test_reads_every_job(fake_blat_server):
    batch = fake_blat_server.add_batch(size=25)
    ...  # any client against fake_blat_server.base_url, with fake_blat_server.api_key
```

Loading the plugin imports pytest and nothing of blat_async but its version:
the server, and aiohttp and cattrs with it, are imported when a test first
asks for the fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from blat_async.testing import FakeBlatServer

__all__ = ["fake_blat_server"]


@pytest.fixture
def fake_blat_server() -> Iterator[FakeBlatServer]:
    """A fake Blat server on loopback for one test, closed when the test ends."""
    # Imported here, not at the top, so that loading the plugin stays cheap.
    from blat_async.testing import FakeBlatServer

    with FakeBlatServer().run_in_thread() as server:
        yield server
