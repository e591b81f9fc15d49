"""Candidate retrieval: FAISS dense channels, the BM25 lexical channel, fused top-K."""
