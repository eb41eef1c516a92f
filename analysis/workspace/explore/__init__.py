"""The Analysis view: rankings, the pool, the activation map, top words."""
