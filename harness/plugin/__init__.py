"""The pytest plugin: hooks (the pytest11 entry point), the session and one module per concern."""
