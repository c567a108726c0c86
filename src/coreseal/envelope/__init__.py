"""The envelope: header format, segment stream, seal, open, describe.

This package takes wrapping keys as objects and never asks where they came
from (docs/format.md is the specification).
"""
