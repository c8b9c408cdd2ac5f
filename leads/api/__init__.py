"""The partner REST API (v1): thin views over leads.services and the selectors."""
