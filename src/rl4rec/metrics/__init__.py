"""Metrics shared by the whole package: ranking metrics and statistics across seeds."""
