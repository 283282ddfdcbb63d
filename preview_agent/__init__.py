"""The preview agent: the program inside every preview container.

Standalone on purpose: it imports nothing from the orchestrator and talks to it only over HTTP and
the realtime channel ``project:{project_id}``.
"""

__version__ = "0.1.0"
