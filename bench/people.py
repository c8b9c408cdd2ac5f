"""Contact details that never repeat within a run: a lead sharing a phone with an earlier one would be
a duplicate, and would measure the duplicate's path instead of a new lead's."""


def phone(index: int) -> str:
    """A valid US number (area 650) for each index below 8,000,000."""
    return f"+1650{200 + (index // 10_000) % 800}{index % 10_000:04d}"
