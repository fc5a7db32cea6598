"""``python -m blat_async``: the same as the ``blat-async`` command."""

from .cli import entry_point

if __name__ == "__main__":
    entry_point()
