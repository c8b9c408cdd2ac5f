"""What each benchmark returns: its figures against their floors and targets, and the table of them."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """A path's figure against its floor measured in the same run (or, without a floor, on its own).

    `target` is what the ratio project / floor must reach, or, without a floor, the project figure
    itself; with `lower_is_better` (times), what it must not exceed."""

    path: str
    project: float
    unit: str
    floor: float | None = None
    floor_label: str = ""
    target: float | None = None
    lower_is_better: bool = False

    @property
    def ratio(self) -> float | None:
        return self.project / self.floor if self.floor else None

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        value = self.ratio if self.floor is not None else self.project
        return value <= self.target if self.lower_is_better else value >= self.target

    def row(self) -> str:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        floor = "" if self.floor is None else f"{_number(self.floor)} {self.unit}"
        if self.floor_label:
            floor = f"{floor} ({self.floor_label})" if floor else self.floor_label
        if self.target is None:
            target = "—"
        else:
            sign = "≤" if self.lower_is_better else "≥"
            target = f"{sign} {_number(self.target)}" + ("" if self.floor is not None else f" {self.unit}")
        met = {True: "yes", False: "**no**", None: "—"}[self.met]
        return f"| {self.path} | {_number(self.project)} {self.unit} | {floor} | {ratio} | {target} | {met} |"


TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def queries_without_transaction_control(queries) -> int:
    """Statements a CaptureQueriesContext saw, leaving out transaction control as the issue counts."""
    return sum(1 for query in queries.captured_queries if not query["sql"].upper().startswith(TRANSACTION_CONTROL))


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def table(figures: list[Figure]) -> str:
    lines = ["| Path | Project | Floor | Ratio | Target | Met |", "|---|---|---|---|---|---|"]
    return "\n".join([*lines, *(figure.row() for figure in figures)])
