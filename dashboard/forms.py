"""The dashboard's forms: a user's quota edited inline, the reason an operator gives for an action, the
session policy the dry-run replays, and a webhook endpoint."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from sessions.dry_run import Policy
from sessions.models import Quota
from sessions.policy_selectors import policy_errors
from webhooks.catalog import EVENT_TYPES
from webhooks.ssrf import UnsafeUrl, registration_check

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


class PolicyForm(forms.Form):
    """A candidate session policy (read from the query string: a dry-run is a shareable link)."""

    idle_timeout_minutes = forms.IntegerField(required=False, label="Idle timeout (minutes)")
    ttl_minutes = forms.IntegerField(required=False, label="Longest session, TTL (minutes)")
    max_concurrent = forms.IntegerField(required=False, label="Sessions at once per user")
    days = forms.IntegerField(required=False, min_value=1, max_value=365, label="Days to replay")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name, message in policy_errors(self.policy()).items():
            if name == "policy" or name not in self.errors:
                self.add_error(None if name == "policy" else name, message)
        return cleaned

    def policy(self) -> Policy:
        data = getattr(self, "cleaned_data", {})
        return Policy(data.get("idle_timeout_minutes"), data.get("ttl_minutes"), data.get("max_concurrent"))

    def window_days(self) -> int:
        return int(self.cleaned_data.get("days") or 30)


class WebhookEndpointForm(forms.Form):
    """An endpoint's URL, description, event types (none ticked: every type) and enabled flag."""

    url = forms.URLField(label="URL", max_length=2000, assume_scheme="https", widget=forms.URLInput(attrs={"size": 60}))
    description = forms.CharField(required=False, max_length=200, widget=forms.TextInput(attrs={"size": 40}))
    event_types = forms.MultipleChoiceField(
        required=False,
        choices=[(name, name) for name in EVENT_TYPES],
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every type, including kinds added later.",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def clean_url(self) -> str:
        url = str(self.cleaned_data["url"])
        try:
            registration_check(url, allow_private=settings.WEBHOOKS_ALLOW_PRIVATE)
        except UnsafeUrl as exc:
            raise forms.ValidationError(str(exc)) from None
        return url
