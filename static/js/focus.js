/* After an htmx swap, keep the keyboard focus where the person was instead of losing it to the top of the page:
   on the first field with an error, else the same control in the new content, else the swapped region's
   heading. Also says why when an htmx request is refused (a 403 or 404 is otherwise swapped nowhere). */
(function () {
  "use strict";

  let pending = null;

  function describe(element) {
    const form = element.closest("form");
    return {
      action: form ? form.getAttribute("action") : null,
      tag: element.tagName,
      name: element.getAttribute("name"),
      text: element.textContent.trim(),
    };
  }

  function sameControl(region, wanted) {
    for (const candidate of region.querySelectorAll(wanted.tag)) {
      const found = describe(candidate);
      if (found.action === wanted.action && found.name === wanted.name && found.text === wanted.text) {
        return candidate;
      }
    }
    return null;
  }

  function firstErrorField(region) {
    const field = region.querySelector(".field--error");
    return field ? field.querySelector("input:not([type=hidden]), select, textarea") : null;
  }

  function heading(region) {
    const found = region.querySelector("h1, h2, h3");
    if (found && !found.hasAttribute("tabindex")) found.setAttribute("tabindex", "-1");
    return found;
  }

  // Noted when the request starts: by the time the answer is swapped in, hx-disabled-elt may have taken the
  // focus off the button that was pressed.
  document.addEventListener("htmx:beforeRequest", (event) => {
    const target = event.detail.target;
    const active = document.activeElement;
    pending = target && target.id && active && active !== document.body && target.contains(active)
      ? { regionId: target.id, control: describe(active) }
      : null;
  });

  document.addEventListener("htmx:afterSettle", () => {
    if (!pending) return;
    const { regionId, control } = pending;
    pending = null;
    const region = document.getElementById(regionId);
    if (!region) return;
    const active = document.activeElement;
    const kept = active && active !== document.body && region.contains(active); // htmx keeps elements with an id
    const next = firstErrorField(region) || (kept ? active : null) || sameControl(region, control) || heading(region);
    if (next && next !== active) next.focus();
  });

  document.addEventListener("htmx:responseError", (event) => {
    const box = document.getElementById("request-error");
    if (!box) return;
    const xhr = event.detail.xhr;
    let detail = "";
    try {
      const page = new DOMParser().parseFromString(xhr.responseText, "text/html");
      const sentence = page.querySelector(".error-page__detail");
      detail = sentence ? sentence.textContent.trim() : "";
    } catch (error) {
      detail = "";
    }
    box.textContent = detail || `The request failed (HTTP ${xhr.status}). Reload the page and try again.`;
    box.hidden = false;
  });
})();
