"""The core: fingerprints, classification, scrubbing, runs and reporting.

Nothing in here imports discord; the adapter turns discord objects into the plain
values these modules take, so they are tested with plain values.
"""
