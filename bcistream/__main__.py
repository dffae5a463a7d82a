"""``python -m bcistream`` = the ``bcistream`` command."""

from bcistream.cli import console_main

console_main()
