// Behaviour every page shares. Pages carry no inline script (the Content-Security-Policy
// allows scripts from Atoll's own files only), so small helpers are wired up here by attribute.
(() => {
  "use strict";

  // A one-time secret (a new API token, an invite link): a click selects all of it for copying.
  // Delegated, so fields that htmx swaps in later work too.
  document.addEventListener("click", (ev) => {
    const field = ev.target instanceof Element ? ev.target.closest("[data-select-on-click]") : null;
    if (field && typeof field.select === "function") field.select();
  });
})();
