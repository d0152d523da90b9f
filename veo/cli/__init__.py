"""The ``veo`` command: ``app`` builds it; one module per family of commands."""
