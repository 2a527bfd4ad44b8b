"""Parity harness: the official scDFM and PerturbDiff modules vs distgen's presets through ``distgen import``'s mapping."""
