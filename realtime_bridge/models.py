from django.db import models


class BridgeLease(models.Model):
    """Who runs the Supabase mirror: one row per lease name, renewed by its holder.

    A holder that stops renewing loses the lease when `expires_at` passes, and another
    instance takes over (works on SQLite and PostgreSQL alike).
    """

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=128)
    expires_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "realtime_bridge_lease"

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder}"
