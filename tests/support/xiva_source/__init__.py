"""Helpers of the platform tests (tests/xiva_source/)."""
