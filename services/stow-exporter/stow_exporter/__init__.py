"""stow-exporter: delivers stable studies to remote archives (STOW-RS or C-STORE)."""
