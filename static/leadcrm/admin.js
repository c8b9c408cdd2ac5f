// leadcrm's small admin behaviours, served locally (no inline script, so a strict CSP holds).
(function () {
  "use strict";

  // Copy buttons: <button data-copy="input-id"> copies that input's value and says so.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var input = document.getElementById(button.getAttribute("data-copy"));
    if (!input) return;
    input.select();
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      button.setAttribute("data-copied", "true");
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
    } else {
      document.execCommand("copy");
      done();
    }
  });

  // Pages of long jobs (<span data-refresh-seconds="3">) reload themselves until the job ends.
  document.addEventListener("DOMContentLoaded", function () {
    var refresh = document.querySelector("[data-refresh-seconds]");
    if (refresh) {
      var seconds = parseInt(refresh.getAttribute("data-refresh-seconds"), 10);
      setTimeout(function () { window.location.reload(); }, 1000 * seconds);
    }
  });
})();

// "Show size" on the audience form: post the form as filled in to the size view, show its answer.
document.addEventListener("click", function (event) {
  var button = event.target.closest("#show-size");
  if (!button) return;
  // Unfold's save bar sits outside the form in the page, so find the audience form by its id.
  var form = button.form || document.getElementById("audience_form");
  var box = document.getElementById("size-preview");
  if (!form || !box) return;
  button.disabled = true;
  fetch(button.getAttribute("data-size-url"), {method: "POST", body: new FormData(form), credentials: "same-origin"})
    .then(function (response) { return response.json(); })
    .then(function (answer) {
      box.textContent = answer.text;
      if (answer.errors) {
        var list = document.createElement("ul");
        Object.keys(answer.errors).forEach(function (field) {
          var item = document.createElement("li");
          item.textContent = field + ": " + answer.errors[field].join(" ");
          list.appendChild(item);
        });
        box.appendChild(list);
      }
      box.hidden = false;
    })
    .catch(function () { box.textContent = "The size could not be counted; try again."; box.hidden = false; })
    .finally(function () { button.disabled = false; });
});

// The flow editor: each step shows only its kind's fields (fieldsets marked step-kind-<kind>).
// The hidden attribute, not a style: Unfold copies a new step from the empty one through innerHTML,
// where the Content-Security-Policy drops style attributes but keeps hidden.
var STEP_KIND = "select[name^='steps-'][name$='-kind']";
function showStepKindFields(select) {
  var step = select.closest(".form-group") || select.form;
  step.querySelectorAll("fieldset.step-kind").forEach(function (fieldset) {
    fieldset.hidden = !fieldset.classList.contains("step-kind-" + select.value);
  });
}
document.addEventListener("change", function (event) {
  if (event.target.matches(STEP_KIND)) showStepKindFields(event.target);
});
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(STEP_KIND).forEach(showStepKindFields);
});

// Slugs of inline rows added in the page (a campaign's landing pages): Django fills them from the
// name for the rows it rendered, not for rows Unfold adds with JavaScript, so fill those here.
function slugify(text) {
  if (window.URLify) return window.URLify(text, 80, true);
  return text.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
    .replace(/[^a-z0-9\s-]/g, "").trim().replace(/[\s-]+/g, "-").slice(0, 80);
}
document.addEventListener("input", function (event) {
  var match = /^(.+-\d+)-name$/.exec(event.target.name || "");
  if (!match) return;
  var slug = document.querySelector("input[name='" + match[1] + "-slug']");
  // Only a slug that is empty or was filled here: a saved page's slug (its URL) never changes by itself.
  if (!slug || slug.dataset.typed === "true" || (slug.value && slug.dataset.auto !== "true")) return;
  slug.value = slugify(event.target.value);
  slug.dataset.auto = "true";
});
document.addEventListener("input", function (event) {
  if (/-\d+-slug$/.test(event.target.name || "")) event.target.dataset.typed = "true";
});
