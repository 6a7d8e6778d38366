"""The notifications app's services: the send pipeline, status, recipients, API clients."""
