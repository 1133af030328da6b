"""Reporting: results.json, report.md and PNG plots of a run."""
