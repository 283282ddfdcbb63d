"""Machine providers: one protocol (``base``) and its implementations."""
