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
})();
