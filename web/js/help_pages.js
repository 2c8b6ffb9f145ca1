// Lets the pack's help pages show their formula blocks whole in the editor's narrow help panel.
//
// The panel gives code blocks no horizontal scrolling, so a formula wider than the panel is cut
// off at its right edge. This adds one style rule, limited to help pages that show this pack's
// pictures (web/docs/<NodeId>/graph.png): such a block scrolls sideways instead. Other packs'
// pages and the editor's own are left as they are.

const { app } = window.comfyAPI.app;

const STYLE_ID = "style-guidance-help-pages";
const RULE = `
.node-help-content:has(img[src*="/docs/StyleGuidance"]) pre {
  overflow-x: auto;
  max-width: 100%;
  white-space: pre;
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
