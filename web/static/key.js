// The key prompt, shown when the server refuses a read for want of its API key.
import { $ } from "./dom.js";

// Ask for the key until signIn(key) accepts it (resolves true) or the user cancels (false).
// signIn resolves to null when the key is right, else to the reason it was refused.
export function askForKey(signIn) {
  const dialog = $("key-dialog");
  const input = $("key-input");
  const error = $("key-error");
  return new Promise((resolve) => {
    $("key-form").onsubmit = async (e) => {
      e.preventDefault();
      error.hidden = true;
      const problem = await signIn(input.value);
      if (problem === null) {
        input.value = "";
        dialog.close("ok");
      } else {
        error.textContent = problem;
        error.hidden = false;
        input.select();
      }
    };
    $("key-cancel").onclick = () => dialog.close("cancel");
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    input.focus();
  });
}
