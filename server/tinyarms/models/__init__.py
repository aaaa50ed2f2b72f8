"""`models/`: where model files come from. `sources.resolve` maps `embedded:NAME`, a local
`.gguf` path or `hf:owner/repo/file.gguf` to a file on disk (never downloading);
`pull` downloads `hf:` files into the cache (resumable, checked); `listing` says what
the cache holds and which tier uses what. The crash-isolated process that runs a model
is `local_model/`."""
