"""``python -m dbsnaplake.cli``: the same as the ``dbsnaplake`` command."""

from dbsnaplake.cli import main

main()
