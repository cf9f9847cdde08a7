// Keep the monitor's stage graph (ipycytoscape, a sibling of our header) fitted to its box.
//
// ipycytoscape lays the graph out and fits it once, when its view is first displayed —
// often before the box has its real height (its stylesheet says 400 px; ours is the
// graph's height) — and does not fit again when the box changes size. So from the
// header's view we find the graph's cytoscape instance once it exists, fit it (never past
// 100 % zoom: ipycytoscape's max_zoom), and again whenever its box changes size.
const PADDING = 12;

function findCy(root) {
  for (const div of root.querySelectorAll("div")) {
    if (div._cyreg && div._cyreg.cy) return { cy: div._cyreg.cy, box: div };
  }
  return null;
}

export function keepDagFitted(el) {
  let stopped = false;
  let observer = null;
  let timer = null;
  let tries = 0;
  let onScroll = null;
  const fit = (cy) => {
    cy.resize();
    if (cy.nodes().length) cy.fit(undefined, PADDING);
  };
  const look = () => {
    if (stopped) return;
    const root = el.closest(".si-monitor");
    const found = root ? findCy(root) : null;
    if (found && found.box.clientHeight > 0 && found.cy.nodes().length) {
      fit(found.cy);
      let last = `${found.box.clientWidth}x${found.box.clientHeight}`;
      observer = new ResizeObserver(() => {
        const size = `${found.box.clientWidth}x${found.box.clientHeight}`;
        if (size !== last && found.box.clientHeight > 0) {
          last = size;
          fit(found.cy);
        }
      });
      observer.observe(found.box);
      // ipycytoscape re-runs its layout when stages are added: fit after each run
      found.cy.on("layoutstop", () => fit(found.cy));
      // cytoscape caches where its box is on the page and forgets it only when the window
      // scrolls; JupyterLab scrolls the notebook panel instead, which would send clicks to
      // the wrong place: tell it (once per frame) when anything scrolls
      let queued = false;
      onScroll = () => {
        if (queued) return;
        queued = true;
        requestAnimationFrame(() => {
          queued = false;
          found.cy.resize();
        });
      };
      document.addEventListener("scroll", onScroll, true);
      return;
    }
    if (++tries < 600) timer = setTimeout(look, 100); // up to a minute for a slow page
  };
  look();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    if (observer) observer.disconnect();
    if (onScroll) document.removeEventListener("scroll", onScroll, true);
  };
}
