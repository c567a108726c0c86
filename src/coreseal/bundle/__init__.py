"""Support bundles: collect, the incident key, safe extract, reconstruct.

A bundle is ``HOST.DATE_TIME.tgz``: ``manifest.json`` first, then the
members it lists (logs, the event journal as JSON Lines, sealed dumps) and,
when a password protects it, ``incident-key-file``. The key cache and the
provider's secret are never in it, nor any plaintext dump.
"""

MANIFEST = "manifest.json"
KEY_FILE = "incident-key-file"
FORMAT = "coreseal-bundle"
VERSION = 1
