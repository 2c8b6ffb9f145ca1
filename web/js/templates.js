// The template browser's cards of this pack: in the pack's order (the starter first) and
// under a readable category name.
//
// The editor (ComfyUI_frontend 1.32 / 1.35) lists a pack's templates by file name, in the
// server's directory order, under the pack's folder name. web/templates.json (written by
// scripts/workflows.py build) gives the order and the category's name in each language; the
// titles and one-line descriptions are drawn on each card's picture (workflows/<name>.jpg).
// Other packs' templates and the editor's own are left alone.

import { editorI18n } from "./locale_compat.js";

const { app } = window.comfyAPI.app;
const { api } = window.comfyAPI.api;

// This file is served at /extensions/<pack folder>/js/templates.js: the folder is the
// template browser's module name for this pack.
const PACK_FOLDER = decodeURIComponent(new URL(import.meta.url).pathname.split("/").slice(-3)[0]);

/** Our names in the order of web/templates.json; any other name after them, alphabetically. */
export function ordered(names, order) {
  const rank = (n) => (order.includes(n) ? order.indexOf(n) : order.length);
  return [...names].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

app.registerExtension({
  name: "StyleGuidance.Templates",
  async setup() {
    let index;
    try {
      index = await (await fetch(new URL("../templates.json", import.meta.url))).json();
    } catch (e) {
      console.warn("[Style Guidance] no template index:", e);
      return;
    }
    const list = api.getWorkflowTemplates?.bind(api);
    if (list) {
      api.getWorkflowTemplates = async () => {
        const all = await list();
        if (Array.isArray(all?.[PACK_FOLDER])) all[PACK_FOLDER] = ordered(all[PACK_FOLDER], index.order);
        return all;
      };
    }
    const i18n = editorI18n();
    if (!i18n) return;
    const key = PACK_FOLDER.replace(/\./g, "_"); // the editor's normalizeI18nKey
    for (const [locale, label] of Object.entries(index.category ?? {})) {
      i18n.global.mergeLocaleMessage(locale, { templateWorkflows: { category: { [key]: label } } });
    }
  },
});
