"""Adapters for other frameworks (duck-typed: the frameworks themselves are never imported)."""
