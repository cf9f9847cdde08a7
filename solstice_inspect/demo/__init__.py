"""The reference instrumented pipeline and the shipped sample stream."""
