"""Admin for the lead domain, one module per job; importing them registers the admin classes."""

from . import buying, configuration, delivery, imports, money, partners, system, workspace
from .workspace import EstimatedCountPaginator

__all__ = [
    "EstimatedCountPaginator",
    "buying",
    "configuration",
    "delivery",
    "imports",
    "money",
    "partners",
    "system",
    "workspace",
]
