// Lists the pack's entry nodes before its helpers in the editor's node search.
//
// The editor ranks equally good matches by a table of how often nodes are used (its
// "nodeFrequency" store, shipped with the editor; nodes it does not list count 0), then by the
// length of the node id. Every node id of this pack starts with "StyleGuidance", so a search for
// "style" or "guidance" matches all of them equally well, and the shortest ids won: Range,
// Apply, PatchNCE (StyleGuidanceZeCon), Invert and Guider came before the Guided KSampler and
// the style losses a user looks for.
//
// This gives the entry nodes small counts (1 to 5) where the table has none, so among equally
// good matches they come first, in this order; any node with real use in the editor's table
// still comes before them, and the match itself (how well the words fit) still decides first.
// Editors whose search reads a node's search_aliases get those from the node definitions too.
// Where the store is not found (another editor), nothing changes.

const { app } = window.comfyAPI.app;

// node id -> rank among the pack's nodes (higher first)
const RANK = {
  StyleGuidanceSampler: 5,
  StyleGuidanceCLIPStyle: 4,
  StyleGuidanceGramStyle: 4,
  StyleGuidanceVGGContent: 3,
  StyleGuidanceContentMSE: 3,
  StyleGuidanceVGGLoader: 2,
  StyleGuidanceOpenCLIPLoader: 2,
  StyleGuidanceMeasure: 1,
};

/** The editor's pinia store with this id, or undefined. */
function editorStore(id) {
  const vueApp = document.getElementById("vue-app")?.__vue_app__;
  const pinia = vueApp?.config?.globalProperties?.$pinia;
  return pinia?._s?.get?.(id);
}

function rankPackNodes() {
  const store = editorStore("nodeFrequency");
  const original = store?.getNodeFrequencyByName;
  if (typeof original !== "function" || original.__styleGuidance) return false;
  const ranked = function (name) {
    const used = original.call(this, name);
    return used || RANK[name] || 0;
  };
  ranked.__styleGuidance = true;
  store.getNodeFrequencyByName = ranked;
  return true;
}

app.registerExtension({
  name: "StyleGuidance.SearchRank",
  async setup() {
    // The store is made on its first use (the first search, or the editor's start-up): look for
    // it a while, then stop.
    let tries = 0;
    const poll = () => {
      if (!rankPackNodes() && ++tries < 120) setTimeout(poll, 500);
    };
    poll();
  },
});
