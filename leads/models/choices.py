"""Choices shared across the leads app's models (and its services, filters and reports)."""

from django.db import models


class Door(models.TextChoices):
    LANDING_PAGE = "landing_page", "Landing page"
    QUIZ = "quiz", "Quiz funnel"
    API = "api", "Partner API"
    CSV = "csv", "CSV import"
    ADMIN = "admin", "Admin"


class Validity(models.TextChoices):
    VALID = "valid", "Valid"
    SUSPECT = "suspect", "Suspect"
    INVALID = "invalid", "Invalid"


class Qualification(models.TextChoices):
    QUALIFIED = "qualified", "Qualified"
    DISQUALIFIED = "disqualified", "Disqualified"


class LeadStatus(models.TextChoices):
    NEW = "new", "New"
    CONTACTED = "contacted", "Contacted"
    WORKING = "working", "Working"
    WON = "won", "Won"
    LOST = "lost", "Lost"
    RETURNED = "returned", "Returned"


OPEN_STATUSES = (LeadStatus.NEW, LeadStatus.CONTACTED, LeadStatus.WORKING)


class ApiScope(models.TextChoices):
    LEADS_WRITE = "leads:write", "leads:write"
    LEADS_READ = "leads:read", "leads:read"
    OUTCOMES_WRITE = "outcomes:write", "outcomes:write"
    CAMPAIGNS_READ = "campaigns:read", "campaigns:read"
    REPORTS_READ = "reports:read", "reports:read"
    SUPPRESSION_WRITE = "suppression:write", "suppression:write"
