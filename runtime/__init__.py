"""runtime/: small torch helpers that emitted modules use. Imports only torch and einops."""
