"""Helpers of the segmentation tests (tests/segmentation/)."""
