"""tinyarms: a language server that gives any editor AI help, with every model decision visible."""

__version__ = "0.1.0"
