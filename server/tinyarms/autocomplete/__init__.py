"""The local fill-in-the-middle engine: templates, bounded prompts, post-processing and
the typed-through / speculative cache. No LSP here (see features/autocomplete.py)."""
