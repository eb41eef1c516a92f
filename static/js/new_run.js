// The new-analysis form: the rankings dialog (a native <dialog>; its form posts to the server, which answers
// the list item to append) and the fields each scheme takes. Any change to the list is announced to the main
// form as a "change", so the estimate (hx-trigger "change from:#new-run-form") follows it.
(function () {
  "use strict";
  const form = document.getElementById("new-run-form");
  const dialog = document.getElementById("ranking-dialog");
  if (!form || !dialog) return;
  const list = document.getElementById("ranking-list");
  const empty = document.getElementById("ranking-empty");
  const opener = document.getElementById("add-ranking");
  const method = document.getElementById("id_dialog_method");
  const errors = document.getElementById("ranking-dialog-errors");

  function formChanged() {
    empty.hidden = list.children.length > 0;
    form.dispatchEvent(new Event("change", { bubbles: true }));
  }

  function showFieldsFor(name) {
    dialog.querySelectorAll("[data-methods]").forEach(function (el) {
      const fits = el.dataset.methods.split(" ").includes(name);
      el.hidden = !fits;
      el.querySelectorAll("input").forEach(function (input) { input.disabled = !fits; });
    });
  }

  opener.addEventListener("click", function () {
    errors.replaceChildren();
    showFieldsFor(method.value);
    dialog.showModal();
    method.focus();
  });
  method.addEventListener("change", function () { showFieldsFor(method.value); });
  document.getElementById("ranking-dialog-cancel").addEventListener("click", function () { dialog.close(); });
  dialog.addEventListener("close", function () { opener.focus(); });

  // the server answered the new list item: close the dialog, update the estimate
  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target === list) {
      dialog.querySelector("form").reset();
      dialog.close();
      formChanged();
    }
  });

  list.addEventListener("click", function (event) {
    const button = event.target.closest("[data-remove-ranking]");
    if (!button) return;
    const item = button.closest("li");
    const next = item.nextElementSibling || item.previousElementSibling;
    item.remove();
    (next ? next.querySelector("button") : opener).focus();
    formChanged();
  });
})();
