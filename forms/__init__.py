"""Readers for PDF forms and email-body requests. Pure: bytes in, fields and findings out."""
