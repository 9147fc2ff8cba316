"""The query service (FastAPI app and web page): built on the core by a later issue."""
