"""Capture: the kernel's core_pattern handler, dump metadata, storage limits.

Keep imports here lean: the crashing process waits while the handler starts.
"""
