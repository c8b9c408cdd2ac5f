"""Rules staff set on top of the pipeline's own: an offer's qualification rules, blocked email domains."""

from django.core.exceptions import ValidationError
from django.db import models

from campaigns.models import Offer


class QualificationRule(models.Model):
    """One condition a lead for the offer must meet to be qualified, e.g. `company_size >= 50`."""

    class Operator(models.TextChoices):
        EQUALS = "==", "equals"
        NOT_EQUALS = "!=", "does not equal"
        IN = "in", "is one of"
        NOT_IN = "not in", "is none of"
        GREATER_OR_EQUAL = ">=", ">="
        GREATER = ">", ">"
        LESS_OR_EQUAL = "<=", "<="
        LESS = "<", "<"
        CONTAINS = "contains", "contains"
        PRESENT = "present", "is present"

    LEAD_FIELDS = (
        "email",
        "phone",
        "first_name",
        "last_name",
        "company",
        "company_size",
        "budget",
        "country",
        "zip_code",
        "lead_type",
        "action",
        "device_type",
        "os",
    )
    NUMERIC_OPERATORS = (">=", ">", "<=", "<")

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="qualification_rules")
    field = models.CharField(
        max_length=80, help_text="A lead field (country, company_size, budget ...) or answers.<question key>."
    )
    operator = models.CharField(max_length=8, choices=Operator.choices)
    value = models.CharField(max_length=500, blank=True, help_text="For 'is one of': values separated by commas.")
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["offer", "position", "id"]

    def __str__(self) -> str:
        if self.operator == self.Operator.PRESENT:
            return f"{self.field} present"
        return f"{self.field} {self.operator} {self.value}"

    def clean(self) -> None:
        errors = {}
        field = self.field.strip()
        if field not in self.LEAD_FIELDS and not (field.startswith("answers.") and len(field) > len("answers.")):
            errors["field"] = f"Use one of {', '.join(self.LEAD_FIELDS)} or answers.<question key>."
        if self.operator in self.NUMERIC_OPERATORS:
            try:
                float(self.value)
            except ValueError:
                errors["value"] = f"'{self.operator}' compares numbers; {self.value!r} is not a number."
        elif self.operator != self.Operator.PRESENT and not self.value.strip():
            errors["value"] = "This operator needs a value."
        if errors:
            raise ValidationError(errors)
        self.field = field


class BlockedEmailDomain(models.Model):
    """Disposable or abusive email domains added by staff, on top of the shipped list."""

    domain = models.CharField(max_length=253, unique=True)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain

    def clean(self) -> None:
        self.domain = self.domain.strip().lower().lstrip("@")
        if "." not in self.domain or " " in self.domain:
            raise ValidationError({"domain": "Enter a domain such as mailinator.com."})
