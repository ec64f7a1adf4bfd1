"""The ground floor: errors, paths, JSONL, progress, atomic writes, the spec base and the
figure style. It imports nothing else from thinkscope."""
