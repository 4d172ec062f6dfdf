"""hsm-archiver: archive tiers HSM (mounted file system) and PACS Store and Remember."""
