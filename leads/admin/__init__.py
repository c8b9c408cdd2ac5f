"""Admin for the lead domain, one module per job; importing them registers the admin classes."""

from . import auctions, buying, configuration, delivery, imports, money, partners, system, workspace
from .workspace import EstimatedCountPaginator

__all__ = [
    "EstimatedCountPaginator",
    "auctions",
    "buying",
    "configuration",
    "delivery",
    "imports",
    "money",
    "partners",
    "system",
    "workspace",
]
