"""Tests of the shared image machinery (lucid.imaging), one module per module of the package."""
