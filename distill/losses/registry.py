"""Registries of loss parts: MI critics and student distillers (one file + one decorator each)."""
from distill.registry import Registry

CRITICS: Registry = Registry("critic")
DISTILLERS: Registry = Registry("distiller")
