"""Typed examples of idempo in each framework; `mypy --strict` checks them in the tests."""
