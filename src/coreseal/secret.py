"""A type for key bytes and passwords whose repr and str give nothing away."""

import hmac


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: bytes):
        if not isinstance(value, bytes | bytearray):
            raise TypeError("a secret holds bytes")
        self._value = bytes(value)

    def reveal(self) -> bytes:
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"Secret(<{len(self._value)} bytes redacted>)"

    __str__ = __repr__

    def __reduce__(self):
        # Pickling would write the bytes somewhere we do not control.
        raise TypeError("secrets are not picklable")
