"""Helpers shared by the tests (and the benchmarks): an S3 server and a fault-injecting proxy, small snapshots and
exports, the CLI in a subprocess, reading a lake back, transforms named as ``tests.support.transforms:...``.

Test modules import from here, never from one another or from ``conftest.py`` (``tests/test_layout_of_tests.py``
checks it). Nothing here is shipped in the wheel.
"""
