// tollgate admin: a little progressive enhancement; every page works
// without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Ask before submitting forms that change many users or cannot be undone.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        ev.preventDefault();
      }
    });
  });
  // Submit the list's filter when the page size changes.
  document.querySelectorAll("select[data-autosubmit]").forEach(function (sel) {
    sel.addEventListener("change", function () { sel.form.submit(); });
  });
  // Show the temporary-only fields only for temporary users.
  document.querySelectorAll("select[data-type-select]").forEach(function (sel) {
    var sync = function () {
      var temp = sel.value === "temporary";
      document.querySelectorAll("[data-temporary]").forEach(function (el) { el.hidden = !temp; });
    };
    sel.addEventListener("change", sync);
    sync();
  });
  // "Copy as environment": a click selects the whole line and copies it.
  document.querySelectorAll("input[data-copyable]").forEach(function (el) {
    el.addEventListener("click", function () {
      el.select();
      if (navigator.clipboard) { navigator.clipboard.writeText(el.value).catch(function () {}); }
    });
  });
});
