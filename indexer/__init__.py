"""Walk image folders and keep an index in step with them (imports the core only)."""
