"""Training: teacher and student training (torchrun-ready)."""
