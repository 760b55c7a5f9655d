"""Example extensions, referenced from the README and run by the tests."""
