"""Helpers shared by the test suites: real media, servers and processes, made on the spot."""
