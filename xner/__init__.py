"""xner."""
