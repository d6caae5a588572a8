"""Placeholder: filled by the spec work on this group."""

from rules.spec import OpSpec

SPECS: list[OpSpec] = []
