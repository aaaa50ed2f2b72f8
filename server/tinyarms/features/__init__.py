"""Editor-facing features. Each is a small class; `server.py` registers them all."""
