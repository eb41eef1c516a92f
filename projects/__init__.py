"""Projects, memberships and uploads (models, corpora, test sets)."""
