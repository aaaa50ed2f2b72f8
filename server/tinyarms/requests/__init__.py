"""`requests/`: the one request path every front door shares (the LSP server's
`tinyarms.ask`, `tinyarms ask` / `demo` on the command line; chat, edit and the agent
next): decide (explicit role, router, or the fallback role when the router fails, with
the reason: decide.py, routing.py), build the messages (messages.py), hand the router's
embedder to the semantic cache and run the role on its tier chain (answer.py)."""
