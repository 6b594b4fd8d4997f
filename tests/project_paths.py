"""Where the project and the tests' own data are, for tests at any depth of tests/."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent
PROJECT = TESTS.parent
