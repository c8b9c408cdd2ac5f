"""Every write of the lead domain that does more than save one row."""

from .assignment import lead_assign, lead_auto_assign, lead_claim, leads_escalate_uncontacted
from .capture import CaptureContext, CaptureResult, lead_capture
from .outbox import outbox_enqueue, outbox_process, outbox_sweep, register_outbox_handler
from .submission import Submission, SubmissionError, parse_submission
from .workflow import lead_add_note, lead_log_call, lead_set_status

__all__ = [
    "CaptureContext",
    "CaptureResult",
    "Submission",
    "SubmissionError",
    "lead_add_note",
    "lead_assign",
    "lead_auto_assign",
    "lead_capture",
    "lead_claim",
    "lead_log_call",
    "lead_set_status",
    "leads_escalate_uncontacted",
    "outbox_enqueue",
    "outbox_process",
    "outbox_sweep",
    "parse_submission",
    "register_outbox_handler",
]
