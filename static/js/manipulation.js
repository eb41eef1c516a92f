// The Manipulation view: a slider move (or any change of the form) asks for the output partial after 150 ms of
// quiet; each request carries a sequence number and an answer older than the one shown is dropped. The URL
// follows the form, so it can be shared.
(function () {
  "use strict";
  const form = document.getElementById("manip-form");
  const output = document.getElementById("manip-output");
  if (!form || !output) return;
  const outputUrl = form.dataset.outputUrl;
  const saveQuery = document.getElementById("manip-save-query");
  let latest = 0, shown = 0, timer = null;

  function query() {
    const params = new URLSearchParams(new FormData(form));
    for (const [key, value] of [...params]) if (value === "") params.delete(key);
    return params;
  }

  async function send() {
    const seq = ++latest;
    const params = query();
    const shareable = params.toString();
    history.replaceState(null, "", "?" + shareable);
    if (saveQuery) saveQuery.value = shareable;
    params.set("seq", String(seq));
    output.setAttribute("aria-busy", "true");
    let html;
    try {
      const response = await fetch(outputUrl + "?" + params.toString(), {headers: {"HX-Request": "true"}});
      html = await response.text();
      if (!response.headers.get("X-Manipulation-Seq") && !response.ok) {
        html = '<p class="message message--error" role="alert">The server could not answer (' + response.status + "); try again.</p>";
      }
    } catch (error) {
      html = '<p class="message message--error" role="alert">The server could not be reached; check the connection and try again.</p>';
    }
    if (seq <= shown) return;  // a newer answer is already on screen
    shown = seq;
    output.innerHTML = html;
    if (seq === latest) output.setAttribute("aria-busy", "false");
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(send, 150);
  }

  form.addEventListener("input", function (event) {
    const target = event.target;
    if (target.type === "range" && target.dataset.output) {
      document.getElementById(target.dataset.output).textContent = Number(target.value).toFixed(3);
    }
    if (target.id === "manip-sentence") {
      const corpus = document.getElementById("manip-corpus");
      if (corpus) corpus.value = "";  // an edited corpus sentence is typed text
    }
    soon();
  });
  form.addEventListener("change", function (event) {
    const target = event.target;
    if (target.classList.contains("manip-as") && target.value !== "") {
      // "as if this were a VERB": clamp the neuron to that label's mean
      const slider = document.getElementById(target.dataset.for);
      const op = document.getElementById(target.dataset.op);
      op.value = "clamp";
      const value = Number(target.value);
      if (value < Number(slider.min)) slider.min = String(value);
      if (value > Number(slider.max)) slider.max = String(value);
      slider.value = String(value);
      document.getElementById(slider.dataset.output).textContent = value.toFixed(3);
      soon();
    } else if (target.id === "manip-model") {
      form.requestSubmit();  // another model has other statistics: the page redraws every slider
    } else if (target.classList.contains("manip-op")) {
      // a new operation has its own range and default: the page redraws the slider without the old value
      target.closest(".manip-slider").querySelector('input[type="range"]').disabled = true;
      form.requestSubmit();
    } else if (target.type !== "range") {
      soon();
    }
  });
  send();
})();
