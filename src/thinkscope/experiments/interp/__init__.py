"""``interp run``: the reasoning-directions pipeline (seed 002) and its presets and page."""
