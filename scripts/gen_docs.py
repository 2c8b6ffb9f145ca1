"""Write web/docs/<NodeId>.md for every node of the pack from its schema (tooltips included)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # appended: ComfyUI's own top-level `nodes` must win

from headless import comfy_host as hc  # noqa: E402
from headless.locate import locate_comfyui  # noqa: E402


def main() -> None:
    base = hc.make_base(Path(tempfile.mkdtemp(prefix="sg_docs_")), standin_nodes=False)
    hc.configure_comfy(locate_comfyui(), base)
    hc.init_nodes()
    import nodes

    out = ROOT / "web" / "docs"
    out.mkdir(parents=True, exist_ok=True)
    for node_id, cls in sorted(nodes.NODE_CLASS_MAPPINGS.items()):
        if not node_id.startswith("StyleGuidance"):
            continue
        schema = cls.define_schema()
        lines = [f"# {schema.display_name or node_id}", "", schema.description, "", "## Inputs", ""]
        for inp in schema.inputs:
            opt = " (optional)" if inp.optional else ""
            lines.append(f"- **{inp.id}**{opt}: {inp.tooltip or ''}")
        lines += ["", "## Outputs", ""]
        for o in schema.outputs:
            lines.append(f"- **{o.display_name or o.io_type}**: {o.tooltip or ''}")
        # Tooltips name the user's model folders; the docs show them relative to ComfyUI.
        text = "\n".join(lines).replace(str(base), "ComfyUI") + "\n"
        (out / f"{node_id}.md").write_text(text)
        print("wrote", out / f"{node_id}.md")


if __name__ == "__main__":
    main()
