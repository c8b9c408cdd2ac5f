// Unfold's Alpine components, registered for Alpine's CSP build (templates/unfold/layouts/skeleton.html).
// The standard build finds x-data="theme()" among the page's globals and runs any inline code; the
// CSP build, which our Content-Security-Policy needs (no 'unsafe-eval'), sees only registered
// components and the data in scope. Unfold defines these functions in its app.js, loaded before.
/* global Alpine, theme, searchForm, searchDropdown, searchCommand, sortRecords, moveRecords, getCurrentTab */
document.addEventListener("alpine:init", function () {
  "use strict";

  var SIDEBAR_KEY = "sidebarDesktopOpen";

  Alpine.data("theme", theme);
  Alpine.data("searchForm", searchForm);
  Alpine.data("searchDropdown", searchDropdown);
  Alpine.data("searchCommand", searchCommand);

  // The <body>'s state, which Unfold writes inline: the open tab (the one in the address first),
  // the sidebars, and whether the desktop sidebar is open, kept across pages in localStorage.
  Alpine.data("unfoldPage", function (defaultTab) {
    var stored = localStorage.getItem(SIDEBAR_KEY);
    return {
      activeTab: defaultTab === undefined ? "" : defaultTab,
      sidebarMobileOpen: false,
      sidebarDesktopOpen: stored === null ? true : stored === "1",
      // Inline formsets sort their rows by drag and drop (x-sort:config names these). Wrapped: the
      // CSP build refuses to hand an expression a value that is also a global, as Unfold's are.
      sortRecords: function (event) {
        return sortRecords(event);
      },
      moveRecords: function (event) {
        return moveRecords(event);
      },
      // Saving a change form comes back to the open tab.
      changeFormAction: function () {
        var here = window.location.pathname + window.location.search;
        return this.activeTab && this.activeTab !== "general" ? here + "#" + this.activeTab : here;
      },
      init: function () {
        if (defaultTab !== undefined) {
          this.activeTab = getCurrentTab() || defaultTab;
        }
        this.$watch("sidebarDesktopOpen", function (open) {
          localStorage.setItem(SIDEBAR_KEY, open ? "1" : "0");
        });
      },
    };
  });
});
