"""tflock-reaper: judge Terraform/OpenTofu state locks against a policy; reap only provably stale ones."""

__version__ = "0.1.0"
