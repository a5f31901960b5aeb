"""Offline checks of the infrastructure as code in infra/."""
