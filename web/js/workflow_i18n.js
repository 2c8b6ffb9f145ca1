// The shipped workflows in the editor's language: node titles, group titles and notes.
//
// The editor translates node names, not the titles and notes a workflow carries. When a
// workflow of this pack (its nodes carry this pack's cnr_id) is opened and the editor's
// language has a table in web/workflow_i18n/ (written by scripts/workflows.py build from
// scripts/translations/workflows.<lang>.json), each title and note found there is replaced
// by its translation. Text the table does not hold stays as it is; other workflows are left
// alone.

const { app } = window.comfyAPI.app;

const PACK_ID = "style-guidance"; // pyproject.toml's name: the cnr_id the workflows' nodes carry
const tables = {};

async function table(locale) {
  if (!(locale in tables)) {
    tables[locale] = fetch(new URL(`../workflow_i18n/${locale}.json`, import.meta.url))
      .then((r) => (r.ok ? r.json() : null))
      .catch(() => null);
  }
  return tables[locale];
}

function locale() {
  return app.extensionManager?.setting?.get?.("Comfy.Locale") || "en";
}

/** Translate one of this pack's graphs in place; returns how many texts changed. */
export function translateGraph(graph, t) {
  let changed = 0;
  for (const node of graph.nodes ?? []) {
    if (node.title && t.titles[node.title]) {
      node.title = t.titles[node.title];
      changed++;
    }
    for (const w of node.widgets ?? []) {
      if (typeof w.value === "string" && t.notes[w.value]) {
        w.value = t.notes[w.value];
        if (node.widgets_values) node.widgets_values[node.widgets.indexOf(w)] = w.value;
        changed++;
      }
    }
  }
  for (const group of graph.groups ?? graph._groups ?? []) {
    if (group.title && t.titles[group.title]) {
      group.title = t.titles[group.title];
      changed++;
    }
  }
  return changed;
}

app.registerExtension({
  name: "StyleGuidance.WorkflowI18n",
  async setup() {
    await table(locale()); // fetched before the first graph is opened
  },
  async afterConfigureGraph() {
    const graph = app.graph;
    const ours = (graph?.nodes ?? []).some((n) => n.properties?.cnr_id === PACK_ID);
    const lang = locale();
    if (!ours || lang === "en") return;
    const t = await table(lang);
    if (t && translateGraph(graph, t)) graph.setDirtyCanvas?.(true, true);
  },
});
