"""The run page: its state, steps and live log; cancel and retry."""
