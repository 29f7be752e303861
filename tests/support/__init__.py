"""Helpers shared by several test modules (clients, apps, subprocess servers)."""
