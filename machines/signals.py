"""What the machines app announces to the layers above it, which it may not import.

``machines_lost`` is sent when machines are taken away from their work: an operator's kill, a machine gone
at the provider (reconciliation), the orchestrator stopping. Whoever runs work on machines (``sessions``)
ends it and answers how many pieces of work ended. Keyword arguments: ``machine_ids``, ``reason`` (an end
reason), ``now``, ``source`` (an event source) and ``detail``.
"""

from django.dispatch import Signal

machines_lost = Signal()
