"""The core customer database. It knows nothing of any plugin."""
