"""HyRA: Hypernetwork-Driven Low-Rank Adaptation Across Attention Heads (Diep et al.)."""
