"""Test harness: a real ComfyUI, tiny random-weight models, and two ways to run graphs."""
