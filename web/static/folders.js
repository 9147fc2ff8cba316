// The folders view: the indexed folders with their image counts, and "Forget…": take a folder's
// images out of the index (files on disk are not touched). It first shows what would go (the
// server's plan: images, and the tags, collection memberships and metadata going with them), then
// forgets only when the user says so.
import { forgetFolders, planForget } from "./api.js";
import { $, el } from "./dom.js";
import { notify, plural, refreshLists, say } from "./lists.js";

export function setupFolders(actions) {
  $("folders-open").addEventListener("click", () => openFolders(actions));
}

async function openFolders(actions) {
  const dialog = $("folders-dialog");
  say($("folders-error"), "");
  $("folders-confirm").hidden = true;
  $("folders-list").hidden = false;
  if (!dialog.open) dialog.showModal();
  try {
    const { filters } = await refreshLists();
    renderFolders(filters.folders, actions);
  } catch (err) {
    say($("folders-error"), err.message, true);
  }
}

// roots first, each followed by its subfolders, indented by depth
function renderFolders(folders, actions) {
  const roots = folders.filter((a) => !folders.some((b) => b !== a && a.value.startsWith(b.value + "/")));
  const rows = [];
  for (const root of roots) {
    const inside = folders.filter((f) => f === root || f.value.startsWith(root.value + "/"));
    for (const f of inside) {
      const rel = f === root ? f.value : f.value.slice(root.value.length + 1);
      const depth = f === root ? 0 : rel.split("/").length;
      rows.push(el("li", { class: "lib-row", style: `--depth: ${depth}`, "data-folder": f.value },
        el("div", { class: "lib-what" },
          el(depth ? "span" : "strong", { class: "folder-name", title: f.value, text: rel }),
          el("span", { class: "muted", text: plural(f.count, "image") })),
        el("button", { type: "button", "aria-label": `Forget ${f.value}…`, onclick: () => plan(f.value, actions) },
          "Forget…")));
    }
  }
  if (!rows.length) rows.push(el("li", { class: "muted", text: "Nothing is indexed yet." }));
  $("folders-list").replaceChildren(...rows);
}

async function plan(folder, actions) {
  say($("folders-error"), "");
  try {
    showPlan(folder, await planForget([folder]), actions);
  } catch (err) {
    say($("folders-error"), err.message, true);
  }
}

// the confirm step: what forgetting the folder takes away, in words
function showPlan(folder, p, actions) {
  const box = $("folders-confirm");
  const lost = [
    [p.tagged, (n) => `your tags on ${n}`],
    [p.in_collections, (n) => `the places of ${n} in your collections (the collections stay)`],
    [p.with_metadata, (n) => `the imported metadata of ${n}`],
  ].filter(([n]) => n).map(([n, what]) => what(plural(n, "image")));
  const lines = [
    el("p", {}, el("strong", { text: `Forget ${plural(p.images, "image")} under ${folder}?` })),
    el("p", { class: lost.length ? "lib-warning" : "" }, lost.length
      ? `Going with them: ${lost.join("; ")}.`
      : "No tags, collections or imported metadata are attached to them."),
  ];
  if (p.handed_over) {
    lines.push(el("p", {}, `${plural(p.handed_over, "image")} also indexed elsewhere keep their tags and ` +
      "metadata on that copy."));
  }
  if (p.everything) lines.push(el("p", { class: "lib-warning" }, "That is every image in the index."));
  for (const c of p.comes_back) {
    lines.push(el("p", { class: "muted" },
      `${c.folder} is still on disk inside ${c.root}: the next index run of ${c.root} adds it back.`));
  }
  lines.push(el("p", { class: "muted" }, "The files themselves are not touched."));
  const go = el("button", { type: "button", class: "danger" }, `Forget ${plural(p.images, "image")}`);
  go.addEventListener("click", () => apply(folder, p, go, actions));
  const back = el("button", { type: "button", onclick: () => openFolders(actions) }, "Cancel");
  box.replaceChildren(...lines, el("div", { class: "lib-actions" }, go, back));
  $("folders-list").hidden = true;
  box.hidden = false;
  back.focus();
}

async function apply(folder, p, button, actions) {
  button.disabled = true;
  try {
    // confirm only what was shown: if more user data came meanwhile, the server asks again (409)
    const done = await forgetFolders([folder], p.with_user_data > 0 || p.everything, p.with_user_data);
    $("folders-dialog").close();
    await refreshLists();
    actions.search();
    notify(`Forgot ${plural(done.images, "image")} under ${folder}.`);
  } catch (err) {
    await plan(folder, actions);  // what would go now (the index may have changed meanwhile)
    say($("folders-error"), err.message, true);
  }
}
