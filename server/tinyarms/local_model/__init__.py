"""Local llama.cpp models, each in its own child process (see client.py for why)."""

from tinyarms.local_model.client import ChatPiece, CompletionResult, LocalModel, LocalModelError
from tinyarms.local_model.manager import all_models, get_model

__all__ = ["ChatPiece", "CompletionResult", "LocalModel", "LocalModelError", "all_models", "get_model"]
