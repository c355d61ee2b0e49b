"""Preference data from the model itself: sample candidates, score them, keep chosen/rejected pairs (DPO)."""
