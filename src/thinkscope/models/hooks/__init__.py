"""Hooks that change a model while they are active (steering, ablation, patching)."""
