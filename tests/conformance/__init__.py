"""Contract tests that take every implementation of an interface at once."""
