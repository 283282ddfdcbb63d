"""The dashboard's forms: a user's quota edited inline, and the reason an operator gives for an action."""

from __future__ import annotations

from typing import Any

from django import forms

from sessions.models import Quota

REASON_HELP = "Optional; kept in the audit log (and a session's end detail)."


class ReasonForm(forms.Form):
    reason = forms.CharField(
        required=False, max_length=400, widget=forms.Textarea(attrs={"rows": 2, "cols": 50}), help_text=REASON_HELP
    )


class QuotaForm(forms.ModelForm):
    """The limits of one user's override (the user is the page's, never a field)."""

    class Meta:
        model = Quota
        fields = [
            "max_concurrent_sessions",
            "max_session_seconds",
            "monthly_machine_seconds",
            "monthly_budget_usd",
            "max_memory_mb",
        ]
        labels = {
            "max_concurrent_sessions": "Live sessions at once",
            "max_session_seconds": "Longest session (seconds)",
            "monthly_machine_seconds": "Machine time a month (seconds)",
            "monthly_budget_usd": "Budget a month (USD)",
            "max_memory_mb": "Largest machine (MB)",
        }

    def values(self) -> dict[str, Any]:
        """The cleaned limits, for ``quota_set``."""
        return {name: self.cleaned_data[name] for name in self.Meta.fields}
