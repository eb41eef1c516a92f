"""The Manipulation view: set neurons to chosen values and compare the outputs."""
