"""PolyLLM: several small local GGUF models behind one smart router."""

__version__ = "0.1.0"
