"""The Ablation view: performance as top / bottom / random neurons are switched off."""
