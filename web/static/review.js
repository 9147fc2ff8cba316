// The review side of the library in the page (behind the API key when one is set): importing a
// catalogue after a preview (catalogue.js), downloading an export (exports.js) and reviewing near
// duplicates (dups.js). A change to the library is announced as a "library-changed" event on
// document, for whatever shows the filters to load them again.
import { setupCatalogue } from "./catalogue.js";
import { setupDuplicates } from "./dups.js";
import { setupExport } from "./exports.js";

// actions: app.js's {search(), open(), similar()}
export function setupReview(actions) {
  for (const button of document.querySelectorAll(".review-close")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }
  setupCatalogue(actions);
  setupExport();
  setupDuplicates(actions);
}

