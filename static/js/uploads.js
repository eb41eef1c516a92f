/* Upload forms (templates/projects/upload_form.html): name the files the server will refuse before anything is
   sent, where the browser can tell, and show the upload's progress (bytes, rate, time left). The server still
   checks everything; the rules come from it (#upload-rules, see neurox_site/context_processors.py). No build step. */
(function () {
  "use strict";

  const rulesElement = document.getElementById("upload-rules");
  if (!rulesElement) return;
  const rules = JSON.parse(rulesElement.textContent);

  function humanBytes(bytes) {
    const units = ["bytes", "KB", "MB", "GB", "TB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
  }

  function humanSeconds(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  function endsWithAny(name, suffixes) {
    const lowered = name.toLowerCase();
    return suffixes.some((suffix) => lowered.endsWith(suffix));
  }

  function isIgnoredExtra(name) {
    return rules.ignoredNames.includes(name) || endsWithAny(name, rules.ignoredSuffixes) ||
      rules.ignoredPrefixes.some((prefix) => name.toUpperCase().startsWith(prefix));
  }

  function selectedFiles(form) {
    return Array.from(form.querySelectorAll("input[type=file]")).flatMap((input) => Array.from(input.files));
  }

  /* The refusals the server would give, as sentences; empty when the browser sees nothing wrong. */
  function refusals(form) {
    const problems = [];
    if (form.dataset.uploadKind === "model") {
      const input = form.querySelector("input[type=file][name=files]");
      const files = input ? Array.from(input.files) : [];
      const oneArchive = files.length === 1 && endsWithAny(files[0].name, rules.archiveSuffixes);
      if (files.length && !oneArchive) {
        for (const file of files) {
          if (endsWithAny(file.name, rules.pickleSuffixes)) {
            problems.push(`${file.name}: pickle-based weights (${rules.pickleSuffixes.join(", ")}) are refused ` +
              "because loading them can run arbitrary code. Convert them once with " +
              "save_pretrained(dir, safe_serialization=True) and upload the .safetensors file.");
          } else if (endsWithAny(file.name, rules.archiveSuffixes)) {
            problems.push(`${file.name}: send an archive on its own, not together with other files.`);
          } else if (isIgnoredExtra(file.name)) {
            // stored nowhere: the server skips it and lists it in the upload's notes
          } else if (!endsWithAny(file.name, rules.modelFileSuffixes)) {
            problems.push(`${file.name}: not a model file. Code and other files are refused; a model is ` +
              `config.json, *.safetensors weights and tokenizer files (${rules.modelFileSuffixes.join(", ")}).`);
          }
        }
        if (!files.some((file) => file.name === "config.json")) {
          problems.push("config.json is missing: select it together with the weights and the tokenizer files.");
        }
      }
    }
    const total = selectedFiles(form).reduce((sum, file) => sum + file.size, 0);
    if (total > rules.maxBytes) {
      problems.push(`The selected files add up to ${humanBytes(total)}, over the limit of ` +
        `${humanBytes(rules.maxBytes)} for one upload.`);
    }
    return problems;
  }

  function showRefusals(form, problems) {
    const box = form.querySelector(".upload-check");
    box.replaceChildren();
    box.hidden = problems.length === 0;
    if (!problems.length) return;
    const intro = document.createElement("p");
    intro.textContent = problems.length === 1 ? "This would be refused, so it will not be sent:"
      : "These would be refused, so they will not be sent:";
    const list = document.createElement("ul");
    for (const problem of problems) {
      const item = document.createElement("li");
      item.className = "error"; // styled (and found) like the server's own refusals
      item.textContent = problem;
      list.append(item);
    }
    box.append(intro, list);
  }

  function uploadForm(element) {
    return element && element.closest ? element.closest("form[data-upload-kind]") : null;
  }

  document.addEventListener("change", (event) => {
    const form = uploadForm(event.target);
    if (form && event.target.type === "file") showRefusals(form, refusals(form));
  });

  // htmx cancels the request when this event is cancelled: nothing is sent.
  document.addEventListener("htmx:beforeRequest", (event) => {
    const form = uploadForm(event.target);
    if (!form) return;
    const problems = refusals(form);
    showRefusals(form, problems);
    if (problems.length) {
      event.preventDefault();
      form.querySelector(".upload-check").focus();
    }
  });

  document.addEventListener("htmx:beforeSend", (event) => {
    const form = uploadForm(event.target);
    if (!form) return;
    const box = form.querySelector(".upload-progress");
    const bar = box.querySelector("progress");
    const numbers = box.querySelector(".upload-progress__numbers");
    const phase = box.querySelector(".upload-progress__phase");
    const started = performance.now();
    let shown = 0;
    box.hidden = false;
    phase.textContent = "Uploading…";
    event.detail.xhr.upload.addEventListener("progress", (progress) => {
      if (!progress.lengthComputable) return;
      const now = performance.now();
      const done = progress.loaded >= progress.total;
      if (!done && now - shown < 200) return; // a few updates a second are enough to read
      shown = now;
      const seconds = (now - started) / 1000;
      const rate = seconds > 0 ? progress.loaded / seconds : 0;
      bar.max = progress.total;
      bar.value = progress.loaded;
      let text = `${humanBytes(progress.loaded)} of ${humanBytes(progress.total)}`;
      if (rate > 0) text += ` · ${humanBytes(rate)}/s`;
      if (!done && rate > 0) text += ` · about ${humanSeconds((progress.total - progress.loaded) / rate)} left`;
      numbers.textContent = text;
      box.dataset.updates = String(Number(box.dataset.updates || 0) + 1);
      if (done) phase.textContent = "Sent. Checking the files (a large model takes a minute)…";
    });
  });

  document.addEventListener("htmx:afterRequest", (event) => {
    const form = uploadForm(event.target);
    if (form && !event.detail.successful) {
      const box = form.querySelector(".upload-progress");
      if (box) box.querySelector(".upload-progress__phase").textContent = "The upload did not go through.";
    }
  });
})();
