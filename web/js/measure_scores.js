// Shows the Measure node's scores on the node itself, one line per term.
//
// The node returns its text in ComfyUI's `{"ui": {"text": [...]}}` output, which the core editor
// hands to the node's onExecuted but does not draw. This adds a read-only text box to the node
// (the first time it runs) and fills it with that text, line breaks kept. The box is not saved
// with the workflow (no widgets_values entry) and is not sent as an input when queueing.

const { app } = window.comfyAPI.app;
const { ComfyWidgets } = window.comfyAPI.widgets;

const NODE = "StyleGuidanceMeasure";
const WIDGET = "scores";

function scoresWidget(node) {
  let widget = node.widgets?.find((w) => w.name === WIDGET);
  if (widget) return widget;
  widget = ComfyWidgets.STRING(node, WIDGET, ["STRING", { multiline: true }], app).widget;
  widget.serialize = false; // not in the saved workflow's widgets_values
  widget.options = { ...(widget.options ?? {}), serialize: false }; // not an input of the queued prompt
  const el = widget.inputEl ?? widget.element;
  if (el) {
    el.readOnly = true;
    el.wrap = "off"; // one term per line; a long note scrolls instead of breaking a line in two
    el.style.whiteSpace = "pre";
    el.style.overflow = "auto";
    el.setAttribute("aria-label", "Style Guidance scores");
  }
  return widget;
}

function showScores(node, lines) {
  const text = lines.join("\n");
  const widget = scoresWidget(node);
  widget.value = text;
  const el = widget.inputEl ?? widget.element;
  if (el) el.value = text;
  const [w, h] = node.computeSize?.() ?? node.size;
  node.setSize?.([Math.max(node.size[0], w), Math.max(node.size[1], h)]);
  node.setDirtyCanvas?.(true, true);
}

app.registerExtension({
  name: "StyleGuidance.MeasureScores",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      const result = onExecuted?.apply(this, arguments);
      const text = output?.text;
      if (Array.isArray(text) && text.length) showScores(this, text.map(String));
      return result;
    };
  },
});
