"""A neuron's page: its statistics, top words and contexts."""
