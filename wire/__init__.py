"""The wire contract between xmargin's processes: topic names, record schemas, the
EIP-712 digest of an attestation, the book commitment a venue stores, and the 0x-hex
form every hash and address takes on the wire.

A leaf: it imports no other package of the project and does no I/O, so the relayer and
the stream processor both depend on it and on nothing of each other.
"""
