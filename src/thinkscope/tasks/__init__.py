"""Problems and how to grade them: task loaders (GSM8K, reasoning-gym, JSONL, presets),
prompt styles, and answer extraction and verification."""
