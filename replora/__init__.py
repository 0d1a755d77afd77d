"""RepLoRA: Reparameterizing Low-Rank Adaptation via the Perspective of Mixture of Experts (Truong et al.)."""
