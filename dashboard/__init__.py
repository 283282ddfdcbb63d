"""The operator dashboard: server-rendered pages under ``/dashboard/``, updated live over ``/ws/ops/``."""
