"""The real fine-tuning experiments of RepLoRA and HyRA, shared by both papers' entry points.

- `methods`: which parameters train (our adapters, peft's baselines, full fine-tuning) plus a new head;
- `text`: sequence classification with any local HF encoder and any CSV (the CPU-scale reproduction);
- `vision`: ViT-B/16 on VTAB-1K and FGVC;
- `commonsense`: LLaMA on the eight commonsense-reasoning tasks.
"""
