// The periodic task form (django-celery-beat): under the crontab's help, the chosen schedule in words.
// django-celery-beat does this in an inline script, which our Content-Security-Policy refuses.
document.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var data = document.getElementById("readable-crontabs");
  var crontab = document.getElementById("id_crontab");
  var help = document.querySelector(".field-crontab .help");
  var translation = document.querySelector(".field-crontab_translation");
  if (translation) translation.hidden = true;
  if (!data || !crontab || !help) return;
  var readable = JSON.parse(data.textContent);
  var original = help.textContent;
  crontab.addEventListener("change", function () {
    help.textContent = original;
    if (readable[crontab.value]) {
      help.appendChild(document.createElement("br"));
      help.appendChild(document.createTextNode("Translation: " + readable[crontab.value]));
    }
  });
});
