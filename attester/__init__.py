"""An attester: one signer key, its own providers, its own recomputation."""
