"""Tests of the plugins (XEP-0059, XEP-0060)."""
