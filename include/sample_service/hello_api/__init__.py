"""hello-api: the greeting service behind the web front end."""

__version__ = "1.0.0"
