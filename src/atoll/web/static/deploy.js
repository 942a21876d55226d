// Node and alias pages (spec §6): in-page tabs, request charts (uPlot), live instance logs,
// the Request console, curl samples and the alias weight editor. Reads and test requests go to
// the JSON API with the session cookie; writes carry the CSRF header htmx also sends.
(() => {
  "use strict";

  const csrfHeaders = () => {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}");
    } catch {
      return {};
    }
  };

  const problemText = async (r) => {
    try {
      const p = await r.json();
      const field = p.errors && p.errors[0] && p.errors[0].field;
      return (p.detail || p.title || r.statusText) + (field && !(p.detail || "").includes(field) ? ` (${field})` : "");
    } catch {
      return `${r.status} ${r.statusText}`;
    }
  };

  // --- in-page tabs: Monitoring | Logs | Request | Configuration ---------------------------------

  const panelHooks = [];

  function initPanels() {
    const bar = document.querySelector("[data-panels]");
    if (!bar) return;
    const links = [...bar.querySelectorAll("[data-panel]")];
    const show = (name) => {
      if (!links.some((a) => a.dataset.panel === name)) name = links[0].dataset.panel;
      for (const a of links) {
        const on = a.dataset.panel === name;
        a.classList.toggle("active", on);
        a.setAttribute("aria-selected", on ? "true" : "false");
      }
      for (const body of document.querySelectorAll("[data-panel-body]")) {
        body.hidden = body.dataset.panelBody !== name;
      }
      panelHooks.forEach((hook) => hook(name));
    };
    for (const a of links) {
      a.addEventListener("click", (ev) => {
        ev.preventDefault();
        history.replaceState(null, "", "#" + a.dataset.panel);
        show(a.dataset.panel);
      });
    }
    show(location.hash.slice(1));
  }

  // --- charts ------------------------------------------------------------------------------------

  const CODE_COLORS = { 2: ["#1e7d46", "#4caf50", "#8bc34a"], 3: ["#1565c0", "#42a5f5"], 4: ["#ef6c00", "#ffb300", "#a15c00"], 5: ["#b3261e", "#e57373", "#880e4f"] };

  function codeColor(code, used) {
    const family = CODE_COLORS[String(code)[0]] || ["#616161", "#9e9e9e"];
    const n = (used[String(code)[0]] = (used[String(code)[0]] || 0) + 1);
    return family[(n - 1) % family.length];
  }

  const line = (label, stroke, unit, extra = {}) => ({
    label,
    stroke,
    width: 2,
    value: (u, v) => (v == null ? "—" : `${+v.toFixed(2)} ${unit}`),
    ...extra,
  });

  class Charts {
    constructor(root) {
      this.root = root;
      this.url = root.dataset.metricsUrl;
      this.summary = root.querySelector("[data-metrics-summary]");
      this.plots = {};
      this.codeKeys = "";
      this.busy = false;
      this.refresh();
      setInterval(() => document.hidden || this.refresh(), 5000);
      window.addEventListener("resize", () => this.resize());
      panelHooks.push(() => this.resize());
    }

    width(el) {
      return Math.max(el.clientWidth || el.parentElement.clientWidth || 0, 280);
    }

    resize() {
      for (const [name, plot] of Object.entries(this.plots)) {
        const el = this.root.querySelector(`[data-chart="${name}"]`);
        if (el.clientWidth) plot.setSize({ width: this.width(el), height: 180 });
      }
    }

    draw(name, series, data) {
      const el = this.root.querySelector(`[data-chart="${name}"]`);
      const plot = this.plots[name];
      if (plot && plot.series.length === series.length + 1) {
        plot.setData(data);
        return;
      }
      if (plot) plot.destroy();
      this.plots[name] = new uPlot(
        {
          width: this.width(el),
          height: 180,
          series: [{ label: "time" }, ...series],
          scales: { x: { time: true } },
          axes: [{}, { size: 55 }],
          legend: { live: true },
          cursor: { drag: { x: false, y: false } },
        },
        data,
        el,
      );
    }

    async refresh() {
      if (this.busy) return;
      this.busy = true;
      try {
        const r = await fetch(this.url, { headers: { accept: "application/json" } });
        if (!r.ok) {
          this.summary.textContent = "Metrics unavailable: " + (await problemText(r));
          return;
        }
        this.render(await r.json());
      } catch (e) {
        this.summary.textContent = "Metrics unavailable: " + e;
      } finally {
        this.busy = false;
      }
    }

    render(m) {
      const pts = m.points || [];
      const bucket = m.bucketS || 10;
      const xs = pts.map((p) => Date.parse(p.at) / 1000);
      const rps = pts.map((p) => p.requestsPerS);
      const total = Math.round(rps.reduce((a, b) => a + b * bucket, 0));
      const codes = [...new Set(pts.flatMap((p) => Object.keys(p.codes || {})))].sort();
      const byCode = {};
      for (const c of codes) byCode[c] = Math.round(pts.reduce((a, p) => a + ((p.codes || {})[c] || 0), 0));
      const worst = pts.reduce((a, p) => Math.max(a, p.p95Ms || 0), 0);
      this.summary.dataset.requests = String(total);
      this.summary.dataset.codes = JSON.stringify(byCode);
      this.root.dataset.series = JSON.stringify(pts.map((p) => [p.at, p.requestsPerS, p.p50Ms, p.p95Ms, p.p99Ms, p.codes]));
      const codeText = codes.map((c) => `${c}: ${byCode[c]}`).join(", ");
      this.summary.textContent =
        `${total} request${total === 1 ? "" : "s"} in the last 15 min` +
        (total ? ` · peak ${Math.max(...rps).toFixed(1)} req/s · worst p95 ${worst.toFixed(1)} ms · ${codeText}` : "");

      this.draw("requests", [line("req/s", "#1565c0", "req/s", { fill: "rgba(21,101,192,.08)" })], [xs, rps]);
      this.draw(
        "latency",
        // Points as well as lines: a lone busy bucket between quiet ones is still seen.
        ["p50", "p95", "p99"].map((q, i) => line(q, ["#1e7d46", "#ef6c00", "#b3261e"][i], "ms", { points: { show: true, size: 4 } })),
        [xs, pts.map((p) => p.p50Ms), pts.map((p) => p.p95Ms), pts.map((p) => p.p99Ms)],
      );
      const used = {};
      const codeSeries = codes.map((c) => line(c, codeColor(c, used), "/s"));
      const codeData = codes.map((c) => pts.map((p) => ((p.codes || {})[c] || 0) / bucket));
      if (codes.join() !== this.codeKeys && this.plots.codes) {
        this.plots.codes.destroy(); // other codes: other series
        delete this.plots.codes;
      }
      this.codeKeys = codes.join();
      this.draw("codes", codes.length ? codeSeries : [line("no requests", "#9e9e9e", "/s")], [xs, ...(codes.length ? codeData : [xs.map(() => 0)])]);
    }
  }

  // --- live logs of one instance -----------------------------------------------------------------

  function initLogs(root) {
    const out = root.querySelector("[data-log-output]");
    const state = root.querySelector("[data-log-state]");
    const instance = root.querySelector("[data-log-instance]");
    const stream = root.querySelector("[data-log-stream]");
    // Which run of the instance (0: the latest); its choices are rendered by the server (htmx).
    const run = root.querySelector("[data-log-run]");
    const runs = () => window.htmx && run && window.htmx.trigger(run, "runs-changed");
    let offset = 0;
    let generation = 0;
    let busy = false;
    const MAX_CHARS = 512 * 1024;

    const reset = () => {
      generation += 1;
      offset = 0;
      out.textContent = "";
      poll();
    };

    async function poll() {
      if (busy) return;
      busy = true;
      const mine = generation;
      try {
        for (let round = 0; round < 8; round++) {
          const q = new URLSearchParams({ stream: stream.value, offset: String(offset), limit: "262144" });
          if (instance.value) q.set("instance", instance.value);
          if (run && run.value !== "0") q.set("run", run.value);
          const r = await fetch(`${root.dataset.logsUrl}?${q}`);
          if (mine !== generation) return;
          if (!r.ok) {
            state.textContent = await problemText(r);
            return;
          }
          const chunk = await r.json();
          const atBottom = out.scrollTop + out.clientHeight >= out.scrollHeight - 8;
          if (chunk.data) {
            out.textContent += chunk.data;
            if (out.textContent.length > MAX_CHARS) out.textContent = out.textContent.slice(-MAX_CHARS);
            if (atBottom) out.scrollTop = out.scrollHeight;
          }
          const which = run && run.value !== "0" ? `${run.selectedOptions[0]?.textContent.trim()}; ` : "";
          state.textContent = `Instance ${chunk.status}; ${which}${stream.value}, ${chunk.offset} bytes.`;
          const more = chunk.offset > offset && chunk.data.length >= 200000;
          offset = chunk.offset;
          if (!more) break;
        }
      } catch (e) {
        state.textContent = "Logs unavailable: " + e;
      } finally {
        busy = false;
      }
    }

    // Another instance starts at its latest run, and gets its own run choices.
    // The restarts of the instance shown, as the live table last said: a new one is a new run.
    const restartsOf = () =>
      document.querySelector(`[data-instance="${CSS.escape(instance.value)}"]`)?.dataset.instanceRestarts;
    let restarts = restartsOf();
    instance.addEventListener("change", () => {
      if (run) run.value = "0";
      restarts = restartsOf();
      runs();
      reset();
    });
    stream.addEventListener("change", reset);
    if (run) run.addEventListener("change", reset);
    // Keep the instance list in step with the live instances table.
    document.body.addEventListener("htmx:afterSwap", (e) => {
      if (run && e.detail.target === run) {
        reset(); // after a restart the same index names another run: read it again
        return;
      }
      const now = restartsOf();
      if (now !== restarts) {
        restarts = now;
        runs();
      }
      const rows = [...document.querySelectorAll("[data-instance]")];
      const known = new Set([...instance.options].map((o) => o.value));
      for (const row of rows) {
        const id = row.dataset.instance;
        const label = `${id} · ${row.dataset.instanceStatus}`;
        if (!known.has(id)) instance.add(new Option(label, id));
        else [...instance.options].find((o) => o.value === id).textContent = label;
      }
    });
    reset();
    setInterval(() => document.hidden || poll(), 2000);
  }

  // --- curl sample and the Request console -------------------------------------------------------

  const shellQuote = (s) => "'" + s.replace(/'/g, "'\\''") + "'";

  function initCurl(pre) {
    const form = document.querySelector("[data-curl-form]");
    if (!form) return;
    const update = () => {
      const method = form.elements.method.value;
      const path = form.elements.path.value.trim() || "/";
      const body = form.elements.body.value.trim();
      const parts = ["curl", `-H "${pre.dataset.curlHeader}"`];
      if (pre.dataset.curlAuth === "true") parts.push('-H "Authorization: Bearer $ATOLL_TOKEN"');
      parts.push(`-X ${method}`);
      if (body) {
        let compact = body;
        try {
          compact = JSON.stringify(JSON.parse(body));
        } catch {
          /* sent as typed */
        }
        parts.push('-H "Content-Type: application/json"', `-d ${shellQuote(compact)}`);
      }
      parts.push(pre.dataset.curlBase + (path.startsWith("/") ? path : "/" + path));
      pre.textContent = parts.join(" ");
    };
    form.addEventListener("input", update);
    form.addEventListener("change", update);
    // A public alias needs no token: follow the access switch when it is saved.
    document.body.addEventListener("htmx:afterSwap", () => {
      const access = document.querySelector("[data-alias-public]");
      if (access) pre.dataset.curlAuth = access.dataset.aliasPublic === "true" ? "false" : "true";
      update();
    });
    update();
  }

  function initRequest(form) {
    const result = document.querySelector("[data-request-result]");
    const error = form.querySelector("[data-request-error]");
    const showError = (text) => {
      error.textContent = text;
      error.hidden = !text;
    };
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      showError("");
      const text = form.elements.body.value.trim();
      let body = null;
      if (text) {
        try {
          body = JSON.parse(text);
        } catch (e) {
          showError("body: not valid JSON (" + e.message + ")");
          return;
        }
      }
      const button = form.querySelector("button[type=submit]");
      button.setAttribute("aria-busy", "true");
      try {
        const r = await fetch(form.dataset.requestUrl, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "application/json", ...csrfHeaders() },
          body: JSON.stringify({ method: form.elements.method.value, path: form.elements.path.value.trim() || "/", body }),
        });
        if (!r.ok) {
          showError(await problemText(r));
          return;
        }
        const res = await r.json();
        let shown = res.body;
        try {
          shown = JSON.stringify(JSON.parse(res.body), null, 2);
        } catch {
          /* not JSON: shown as it came */
        }
        result.hidden = false;
        const status = result.querySelector("[data-request-status]");
        status.textContent = String(res.status);
        status.className = res.status < 400 ? "ok" : "bad";
        result.querySelector("[data-request-time]").textContent = `${res.elapsedMs} ms`;
        result.querySelector("[data-request-instance]").textContent = res.instanceId;
        result.querySelector("[data-request-body]").textContent = shown;
      } catch (e) {
        showError(String(e));
      } finally {
        button.removeAttribute("aria-busy");
      }
    });
  }

  // --- alias weight editor -----------------------------------------------------------------------

  function updateAddable(form) {
    const group = form.querySelector("[data-add-group]");
    const select = form.querySelector("[data-add-node]");
    if (!group || !select) return;
    const free = [...select.options].filter((o) => !o.disabled);
    group.hidden = free.length === 0;
    if (select.selectedOptions[0]?.disabled !== false) select.value = free[0]?.value ?? "";
  }

  function updateTotal(form) {
    const inputs = [...form.querySelectorAll('input[name="weight"]')];
    const total = inputs.reduce((a, i) => a + (parseInt(i.value, 10) || 0), 0);
    const out = form.querySelector("[data-weight-total]");
    out.textContent = String(total);
    out.classList.toggle("bad", total !== 100);
    out.classList.toggle("ok", total === 100);
  }

  function initWeights() {
    document.addEventListener("input", (ev) => {
      const form = ev.target.closest("[data-weights]");
      if (form) updateTotal(form);
    });
    document.addEventListener("click", (ev) => {
      const form = ev.target.closest("[data-weights]");
      if (!form) return;
      const select = form.querySelector("[data-add-node]");
      if (ev.target.closest("[data-remove-node]")) {
        const row = ev.target.closest("tr");
        const opt = [...select.options].find((o) => o.value === row.dataset.nodeId);
        if (opt) opt.hidden = opt.disabled = false;
        row.remove();
        updateAddable(form);
        updateTotal(form);
      } else if (ev.target.closest("[data-add-node-button]")) {
        const opt = select.selectedOptions[0];
        if (!opt || opt.disabled) return;
        const row = form.querySelector("[data-row-template]").content.firstElementChild.cloneNode(true);
        row.dataset.nodeId = opt.value;
        row.querySelector('input[name="nodeId"]').value = opt.value;
        const link = row.querySelector("[data-node-link]");
        link.textContent = opt.dataset.name;
        link.href = opt.dataset.href;
        row.querySelector("[data-node-status]").textContent = opt.dataset.status;
        const weight = row.querySelector('input[name="weight"]');
        weight.setAttribute("aria-label", `Share of ${opt.dataset.name}, %`);
        weight.dataset.testid = `weight-${opt.dataset.name}`;
        form.querySelector("[data-weight-rows]").append(row);
        opt.hidden = opt.disabled = true;
        updateAddable(form);
        updateTotal(form);
        weight.focus();
      }
    });
    const refresh = () =>
      document.querySelectorAll("[data-weights]").forEach((form) => {
        updateAddable(form);
        updateTotal(form);
      });
    refresh();
    document.body.addEventListener("htmx:afterSwap", refresh);
  }

  function init() {
    initPanels();
    document.querySelectorAll("[data-metrics-url]").forEach((el) => new Charts(el));
    document.querySelectorAll("[data-logs-url]").forEach(initLogs);
    document.querySelectorAll("[data-curl]").forEach(initCurl);
    document.querySelectorAll("[data-request-form]").forEach(initRequest);
    initWeights();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
