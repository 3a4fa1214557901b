"""The model: ``loader`` verifies and opens a bundle; ``runtime`` keeps the active one and
swaps it atomically (a request uses one version's encoder and model, never a mix)."""
