"""Lucid's tests, a package so that ``tests`` here wins over a ``tests`` package some dependency installs
into site-packages (the benchmarks import ``tests.live_app`` and ``tests.load`` from the repository root)."""
