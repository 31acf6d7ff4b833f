"""ragtune: fine-tune and evaluate RAG pipelines (Lawton et al., EMNLP 2025 Findings)."""

__version__ = "0.1.0"
