"""Data: the only part of distgen that touches AnnData (schema, splits, set sampling, datasets)."""
