// The library in the page (behind the API key when one is set): selecting results to tag them or
// add them to a collection (select.js), the collections view (collections.js), the indexed folders
// and forgetting one (folders.js).
import { setupCollections } from "./collections.js";
import { setupFolders } from "./folders.js";
import { setupSelection } from "./select.js";

// actions: app.js's {search(), open(), similar()}; gets pick(hit, index), each card's checkbox
export function setupLibrary(actions) {
  setupSelection(actions);
  setupCollections(actions);
  setupFolders(actions);
}
