"""Command groups written before the cli/ package landed; they move into cli/ on rebase."""
