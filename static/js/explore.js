// The Analysis view's activation maps: one tab stop per map; arrow keys move between words (left/right, Home/End)
// and neurons (up/down). The focused word shows its value (CSS) and carries it in its accessible name.
(() => {
  function cells(grid) {
    return [...grid.querySelectorAll(".map-row")].map((row) => [...row.querySelectorAll(".map-word")]);
  }
  document.addEventListener("keydown", (event) => {
    const word = event.target.closest && event.target.closest(".map-word");
    if (!word) return;
    const grid = word.closest("[data-map-grid]");
    const rows = cells(grid);
    const r = rows.findIndex((row) => row.includes(word));
    const c = rows[r].indexOf(word);
    const moves = { ArrowLeft: [r, c - 1], ArrowRight: [r, c + 1], ArrowUp: [r - 1, c], ArrowDown: [r + 1, c],
                    Home: [r, 0], End: [r, rows[r].length - 1] };
    const target = moves[event.key];
    if (!target) return;
    const [nr, nc] = target;
    if (nr < 0 || nr >= rows.length) return;
    const next = rows[nr][Math.max(0, Math.min(nc, rows[nr].length - 1))];
    if (!next) return;
    event.preventDefault();
    word.tabIndex = -1;
    next.tabIndex = 0;
    next.focus();
  });
  // A pool change swaps the workbench: htmx keeps focus on a toggle that is still there (same id); when the
  // control that had focus is gone (a neuron removed from the pool), focus goes to the pool's heading.
  document.addEventListener("htmx:afterSettle", (event) => {
    if (event.target.id !== "workbench") return;
    if (document.activeElement && document.activeElement !== document.body) return;
    const heading = document.getElementById("pool-title");
    if (heading) heading.focus();
  });
  // The URL is the view's state, and every partial moves it (HX-Push-Url), so a control rendered earlier may
  // hold an older copy of the rest of the state. A control says which keys it sets (data-sets); at request time
  // (or on click, for a plain link) its request becomes the current URL's state with just those keys replaced.
  function merged(control, path, fields) {
    const [base, query] = path.split("?");
    const wanted = new URLSearchParams(query || "");
    for (const [key, value] of fields || []) wanted.append(key, value);
    const state = new URLSearchParams(location.search);
    for (const key of control.dataset.sets.split(",")) {
      state.delete(key);
      for (const value of wanted.getAll(key)) if (value !== "") state.append(key, value);
    }
    const text = state.toString();
    return base + (text ? "?" + text : "");
  }
  document.addEventListener("htmx:configRequest", (event) => {
    const control = event.detail.elt.closest("[data-sets]");
    if (!control || !control.closest("[data-explore]") || event.detail.verb !== "get") return;
    event.detail.path = merged(control, event.detail.path, event.detail.formData);
    event.detail.parameters = {};
  });
  document.addEventListener("click", (event) => {
    const link = event.target.closest && event.target.closest("a[data-sets]:not([hx-get])");
    if (link && link.closest("[data-explore]")) link.href = merged(link, link.getAttribute("href"));
  });
  // The tabs of the workspace carry the state to the other views: keep them on the current URL's.
  document.addEventListener("htmx:pushedIntoHistory", () => {
    for (const tab of document.querySelectorAll(".workspace-tabs a")) {
      if (/\/(analysis|ablation|manipulation)\/$/.test(new URL(tab.href).pathname)) tab.search = location.search;
    }
  });
})();
