// Lets the pack's help pages show their formula blocks whole in the editor's narrow help panel.
//
// In the panel a formula block wider than the panel ends at the panel's edge: the rest can only
// be scrolled to, with no scroll bar shown, so it reads as cut off. This adds one style rule,
// limited to help pages that show this pack's pictures (web/docs/<NodeId>/graph.png): long
// formula lines wrap, so every line is seen whole at any panel width. Other packs' pages and
// the editor's own are left as they are.

const { app } = window.comfyAPI.app;

const STYLE_ID = "style-guidance-help-pages";
const RULE = `
.node-help-content:has(img[src*="/docs/StyleGuidance"]) pre {
  white-space: pre-wrap;
  overflow-wrap: anywhere;
  max-width: 100%;
}`;

app.registerExtension({
  name: "StyleGuidance.HelpPages",
  async setup() {
    if (document.getElementById(STYLE_ID)) return;
    const style = document.createElement("style");
    style.id = STYLE_ID;
    style.textContent = RULE;
    document.head.appendChild(style);
  },
});
