"""Projection-based data transfer: translate, align, project."""
