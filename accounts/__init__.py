"""User accounts, API tokens and per-user quotas."""
