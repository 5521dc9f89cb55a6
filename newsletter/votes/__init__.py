"""Readers' votes on matchups: the one table they live in, their counts, readers vs the panel."""
