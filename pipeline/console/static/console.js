// The inbox's live update: the rows are fetched again every few seconds (server-rendered HTML).
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  const every = Math.max(1, parseFloat(live.dataset.every || "3")) * 1000;
  async function refresh() {
    try {
      const resp = await fetch(live.dataset.src, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (resp.ok) live.innerHTML = await resp.text();
    } catch (e) { /* the next tick tries again */ }
    setTimeout(refresh, every);
  }
  setTimeout(refresh, every);
})();
