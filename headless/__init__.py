"""Style Guidance without the editor: a real ComfyUI driven from Python, workflows, the runner.

Not imported by the node pack itself; ``python -m headless --help`` is the runner.
"""
