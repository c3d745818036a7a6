"""The Profile API (FastAPI). Core modules never import FastAPI; only this package does."""
