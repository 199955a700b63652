// Clarion's SDK. On any site:
//   import { connect } from "https://push.example.com/sdk.js";
//   const clarion = await connect({ serviceWorker: "/clarion-worker.js" });
// `server` (Clarion's origin) defaults to the origin this file came from.
import init, { connect as start } from "./sdk/__GLUE__";

let loaded;

export async function connect(options = {}) {
  loaded ??= init({ module_or_path: new URL("./sdk/__WASM__", import.meta.url) });
  await loaded;
  return start({ server: new URL(import.meta.url).origin, ...options });
}
