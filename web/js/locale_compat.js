// Keeps this pack's translations when the editor switches language.
//
// Editors before ComfyUI_frontend pull request #7214 (December 2025; e.g. 1.32.x, which
// ComfyUI 0.3.7x installs) replace a language's messages when it is first selected, which
// drops the custom-node translations merged at start-up (locales/<lang>/ of every pack).
// This re-merges this pack's entries whenever the editor sets a language's messages, and
// once at start. On an editor with the fix it repeats a merge the editor already did.
// Nothing else changes: other packs' entries and the editor's own are left alone.

const { app } = window.comfyAPI.app;
const { api } = window.comfyAPI.api;

const NODE_PREFIX = "StyleGuidance";

/** vue-i18n's instance, as the editor provides it to its Vue app (undefined if not found). */
export function editorI18n() {
  const vueApp = document.getElementById("vue-app")?.__vue_app__;
  const provides = vueApp?._context?.provides;
  if (!provides) return undefined;
  for (const key of Object.getOwnPropertySymbols(provides)) {
    const value = provides[key];
    if (typeof value?.global?.mergeLocaleMessage === "function") return value;
  }
  return undefined;
}

/** This pack's part of the server's translations: its nodes and its category names. */
function ownPart(all, segments) {
  const out = {};
  for (const [locale, messages] of Object.entries(all ?? {})) {
    const nodeDefs = Object.fromEntries(
      Object.entries(messages?.nodeDefs ?? {}).filter(([id]) => id.startsWith(NODE_PREFIX)));
    const nodeCategories = Object.fromEntries(
      Object.entries(messages?.nodeCategories ?? {}).filter(([segment]) => segments.has(segment)));
    out[locale] = { nodeDefs, nodeCategories };
  }
  return out;
}

app.registerExtension({
  name: "StyleGuidance.LocaleCompat",
  async init() {
    const i18n = editorI18n();
    if (!i18n) return;
    let ours;
    try {
      const [all, defs] = await Promise.all([
        api.fetchApi("/i18n").then((r) => r.json()),
        api.getNodeDefs(),
      ]);
      const segments = new Set(
        Object.values(defs)
          .filter((d) => d.name?.startsWith(NODE_PREFIX))
          .flatMap((d) => (d.category ?? "").split("/")));
      ours = ownPart(all, segments);
    } catch (e) {
      console.warn("[Style Guidance] could not read the translations:", e);
      return;
    }
    const composer = i18n.global;
    const setLocaleMessage = composer.setLocaleMessage;
    composer.setLocaleMessage = function (locale, messages) {
      setLocaleMessage.call(this, locale, messages);
      if (ours[locale]) composer.mergeLocaleMessage(locale, ours[locale]);
    };
    for (const [locale, messages] of Object.entries(ours)) composer.mergeLocaleMessage(locale, messages);
  },
});
