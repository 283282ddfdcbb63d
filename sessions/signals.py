"""What the sessions app announces to the layers above it (a webhooks app, for one), which it may not import.

``budget_warning`` is sent once per user, month and level when the budget check finds a user's month-to-date
spend at 80, 95 or 100 percent of their monthly budget (at 100 their live sessions have just ended, reason
``budget``); after the notice's commit, synchronously, sender ``None``. Keyword arguments:

- ``user_id`` (UUID), ``level`` (int: 80, 95 or 100), ``month`` (date: the month's first day);
- ``spend_usd``, ``cap_usd`` (Decimal), ``at`` (aware datetime: the check's ``now``);
- ``sessions``: the user's live sessions at that moment (the ended ones at 100), as
  ``[{"session_id": str, "project_id": str}]``.

A receiver that raises is logged and ignored (``send_robust``): a broken subscriber never stops the check.
"""

from django.dispatch import Signal

budget_warning = Signal()
