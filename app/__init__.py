"""MIP Governance Service."""
