"""A run's downloads in each format."""
