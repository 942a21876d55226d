// A running job's page follows the job on the API's event stream (GET /api/v1/jobs/{id}/events):
// when output is written or the job moves, its live part (#job-live) is refreshed at once, rather
// than on a timer. Only the news matters here; htmx renders the page.
(() => {
  "use strict";
  const first = document.getElementById("job-live");
  if (!first || !first.dataset.follow || typeof EventSource !== "function") return;
  const offsets = JSON.parse(first.dataset.offsets || "{}");
  const query = new URLSearchParams({ ...offsets, limit: "65536" });
  const source = new EventSource(`/api/v1/jobs/${encodeURIComponent(first.dataset.follow)}/events?${query}`);
  source.addEventListener("news", (ev) => {
    const news = JSON.parse(ev.data);
    const live = document.getElementById("job-live");
    if (live && window.htmx) window.htmx.trigger(live, "news");
    // The stream ends after the last news; EventSource would otherwise open it again.
    if (news.eof) source.close();
  });
  // A stream that fails (signed out, the job gone) is not retried: the page's own refresh says why.
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) source.close();
  });
})();
