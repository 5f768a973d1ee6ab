"""Encoders, heads, conversion of the offline multilingual encoder, distillation losses."""
