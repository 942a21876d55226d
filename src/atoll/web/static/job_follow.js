// A running job's page follows the job through the API's long poll (GET /api/v1/jobs/{id}/follow):
// when output is written or the job moves, its live part (#job-live) is refreshed at once, rather
// than on a timer. Only offsets and the state digest are kept here; htmx renders the page.
(() => {
  "use strict";
  const first = document.getElementById("job-live");
  if (!first || !first.dataset.follow) return; // a finished job: nothing to follow
  const jobId = first.dataset.follow;
  const offsets = JSON.parse(first.dataset.offsets || "{}");
  let state = "";
  const pause = (ms) => new Promise((done) => setTimeout(done, ms));

  const follow = async () => {
    for (;;) {
      const query = new URLSearchParams({ ...offsets, state, wait: "20", limit: "65536" });
      let news;
      try {
        const resp = await fetch(`/api/v1/jobs/${encodeURIComponent(jobId)}/follow?${query}`, {
          credentials: "same-origin",
        });
        if (!resp.ok) return; // signed out or gone: the page's own refresh shows it
        news = await resp.json();
      } catch {
        await pause(2000); // the server restarts: try again, gently
        continue;
      }
      for (const chunk of news.chunks) offsets[chunk.stream] = chunk.offset;
      const moved = news.chunks.length > 0 || news.state !== state;
      state = news.state;
      const live = document.getElementById("job-live");
      if (moved && live && window.htmx) window.htmx.trigger(live, "news");
      if (news.eof) return;
    }
  };
  follow();
})();
