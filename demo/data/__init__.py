"""The demo's sample directory: organisations, role holders, practice signers and the AEL."""
