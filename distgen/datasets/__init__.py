"""Real perturbation datasets bundled inside the package (no download), with their schemas.

The loaders live in ``distgen.data.bundled``; this package holds the files and their source records.
"""

from distgen.data.bundled import KANG_SCHEMA, NORMAN_SCHEMA, kang_pbmc, norman_k562, path

__all__ = ["KANG_SCHEMA", "NORMAN_SCHEMA", "kang_pbmc", "norman_k562", "path"]
