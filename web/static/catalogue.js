// Import a catalogue from the page: the file is sent once as a dry run, and the preview says what
// would happen (rows, matched images, fields, the rows that match nothing and why); only "Apply"
// sends it again to change the library.
import { importCatalogue } from "./api.js";
import { $, el } from "./dom.js";
import { plural, say } from "./lists.js";

const SHOWN = 20;  // problem rows listed (the CLI's --json has them all)

export function setupCatalogue(actions) {
  $("cat-open").addEventListener("click", open);
  $("cat-form").addEventListener("submit", (e) => { e.preventDefault(); preview(actions); });
  $("cat-file").addEventListener("change", reset);
  $("cat-column").addEventListener("input", reset);
}

function open() {
  $("cat-form").reset();
  reset();
  $("cat-dialog").showModal();
}

function reset() {
  say($("cat-error"), "");
  $("cat-preview").hidden = true;
  $("cat-preview").replaceChildren();
  $("cat-start").hidden = false;
}

const chosen = () => [$("cat-file").files[0], $("cat-column").value.trim()];

async function preview(actions) {
  const [file, column] = chosen();
  if (!file) return;
  reset();
  const button = $("cat-start").querySelector("[type=submit]");
  button.disabled = true;
  try {
    show(await importCatalogue(file, column, true), actions);
  } catch (err) {
    say($("cat-error"), err.message, true);
  } finally {
    button.disabled = false;
  }
}

function show(report, actions) {
  const box = $("cat-preview");
  const fields = Object.entries(report.fields).sort((a, b) => b[1] - a[1]);
  const problems = [
    ...report.unmatched.map((r) => [r.line, `no indexed image matches “${r.image}”`]),
    ...report.ambiguous.map((r) => [r.line, `${r.candidates} indexed images are named “${r.image}”: give its path`]),
    ...report.bad.map((r) => [r.line, r.reason]),
  ].sort((a, b) => a[0] - b[0]);
  const apply = el("button", { type: "button", class: "primary", id: "cat-apply", disabled: !report.matched },
    `Apply to ${plural(report.matched, "image")}`);
  apply.addEventListener("click", () => commit(apply, actions));
  box.replaceChildren(...[
    el("h3", { text: `Preview of ${chosen()[0].name}` }),
    el("p", { class: "cat-summary" },
      el("strong", { text: `${plural(report.matched, "row")} of ${report.rows.toLocaleString()} ${report.matched === 1 ? "matches" : "match"}` }),
      ` indexed images; ${problems.length ? plural(problems.length, "row") + " would be left out" : "none left out"}.`,
      report.matched ? ` ${plural(report.values, "value")} in ${plural(fields.length, "field")}:` : ""),
    fields.length ? el("ul", { class: "cat-fields", "aria-label": "Fields and how many images get each" },
      ...fields.map(([k, n]) => el("li", {}, el("span", { text: k }), el("span", { class: "muted", text: n.toLocaleString() })))) : null,
    problems.length ? el("details", { class: "cat-problems", open: problems.length <= 5 },
      el("summary", { text: `${plural(problems.length, "row")} left out` }),
      el("ul", {}, ...problems.slice(0, SHOWN).map(([line, why]) => el("li", {}, el("span", { class: "muted", text: `line ${line}: ` }), why)),
        problems.length > SHOWN ? el("li", { class: "muted", text: `… and ${problems.length - SHOWN} more` }) : null)) : null,
    el("div", { class: "lib-actions" }, apply,
      el("button", { type: "button", onclick: () => $("cat-dialog").close() }, "Cancel")),
  ].filter(Boolean));  // (replaceChildren would write a null as the text "null")
  $("cat-start").hidden = true;
  box.hidden = false;
  (report.matched ? apply : box.querySelector("button:last-child")).focus();
}

async function commit(button, actions) {
  const [file, column] = chosen();
  button.disabled = true;
  try {
    const done = await importCatalogue(file, column, false);
    const box = $("cat-preview");
    box.replaceChildren(
      el("p", { class: "cat-done", role: "status" },
        el("strong", { text: `Imported ${report(done)}.` }),
        " Filter by the new fields in the header, or search their values."),
      el("div", { class: "lib-actions" },
        el("button", { type: "button", class: "primary", onclick: () => $("cat-dialog").close() }, "Done")));
    box.querySelector("button").focus();
    document.dispatchEvent(new CustomEvent("library-changed", { detail: { what: "metadata" } }));
    actions.search();  // the cards show the new titles and prices
  } catch (err) {
    button.disabled = false;
    say($("cat-error"), err.message, true);
  }
}

const report = (r) => `${plural(r.matched, "image")}: ${plural(r.values, "value")} from ${chosen()[0].name}`;
