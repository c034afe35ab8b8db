"""Streaming online evaluation of recommender learners (LIS/AIS)."""
