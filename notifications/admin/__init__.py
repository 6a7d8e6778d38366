"""The operators' admin for this app's models (and, see catalog.py, for templates_app's)."""

from notifications.admin import catalog, notifications, recipients  # noqa: F401  (registers the admins)
