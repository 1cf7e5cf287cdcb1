// Electron main process. safety-lens runs in a utility process, so a crash in llama.cpp or a GPU driver
// cannot take the windows down; renderers reach it over IPC through a preload script:
//   contextBridge.exposeInMainWorld("safetyLens", {
//     info: () => ipcRenderer.invoke("safety-lens:info"),
//     capture: (texts, layers) => ipcRenderer.invoke("safety-lens:capture", texts, layers),
//   });
"use strict";
const path = require("node:path");
const { app, ipcMain, utilityProcess } = require("electron");

// The model ships in extraResources (see package.json "build"); in development, safety-lens's embedded test model.
const modelPath = app.isPackaged
  ? path.join(process.resourcesPath, "model.gguf")
  : require.resolve("safety-lens/models/stories260K.gguf");

let worker = null;
let nextId = 1;
const pending = new Map();

function startWorker() {
  worker = utilityProcess.fork(path.join(__dirname, "worker.js"), [modelPath], { serviceName: "safety-lens" });
  worker.on("message", ({ id, result, error }) => {
    const call = pending.get(id);
    pending.delete(id);
    if (!call) return;
    if (error) call.reject(Object.assign(new Error(error.message), { name: error.name, code: error.code }));
    else call.resolve(result);
  });
  worker.on("exit", (code) => {
    worker = null; // the next call starts a new one
    for (const call of pending.values()) call.reject(new Error(`the safety-lens process exited (code ${code})`));
    pending.clear();
  });
}

/** One request to the utility process, which is started on first use. */
function call(method, ...args) {
  if (!worker) startWorker();
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, method, args });
  });
}

app.whenReady().then(async () => {
  ipcMain.handle("safety-lens:info", () => call("info"));
  ipcMain.handle("safety-lens:capture", (_event, texts, layers) => call("capture", texts, layers));
  try {
    const { runtime } = await call("info");
    console.log(`safety-lens: ${runtime.addon.kind} addon ${runtime.addon.path}, llama.cpp ${runtime.llamaCpp.release}`);
  } catch (e) {
    console.error(`safety-lens is unavailable: ${e.message}`); // e.code says why (BackendError codes, see the README)
  }
});

app.on("will-quit", () => worker?.kill());
