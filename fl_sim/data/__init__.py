"""Data: loaders (IDX folder, Hugging Face Hub, embedded default), partitioning, triggers."""
