"""Text to Intent: sentence templates first (fast, exact); an LLM for what no template matches."""
