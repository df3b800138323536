"""The case store, the user directory and its rules, approvals and the AEL."""
