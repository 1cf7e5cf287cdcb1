// A stand-in for Electron's built-in "electron" module, enough for examples/electron/main.js to run in plain Node:
// app (isPackaged, whenReady, will-quit), ipcMain.handle, and utilityProcess.fork, whose child gets
// process.parentPort (utility-preload.js) and structured-clone messages, as Electron's utility processes do.
"use strict";
const { fork } = require("node:child_process");
const { EventEmitter } = require("node:events");
const path = require("node:path");

let markReady;
const ready = new Promise((resolve) => (markReady = resolve));

const app = Object.assign(new EventEmitter(), {
  isPackaged: true,
  whenReady: () => ready,
  /** test driver: Electron finished starting; resolves after the whenReady callbacks ran */
  _ready() {
    markReady();
    return ready.then(() => new Promise((resolve) => setImmediate(resolve)));
  },
  _quit() {
    app.emit("will-quit");
  },
});

const handlers = new Map();
const ipcMain = {
  handle(channel, listener) {
    handlers.set(channel, listener);
  },
  /** test driver: what ipcRenderer.invoke(channel, ...args) reaches */
  async _invoke(channel, ...args) {
    if (!handlers.has(channel)) throw new Error(`no handler for ${channel}`);
    return handlers.get(channel)({ sender: null }, ...args);
  },
};

const utilityProcess = {
  fork(modulePath, args = [], options = {}) {
    const child = fork(modulePath, args, {
      execArgv: ["--require", path.join(__dirname, "utility-preload.js")],
      serialization: "advanced",
      env: { ...(options.env ?? process.env), STUB_RESOURCES_PATH: process.resourcesPath },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const proc = new EventEmitter();
    child.on("message", (m) => proc.emit("message", m));
    child.on("exit", (code) => proc.emit("exit", code ?? 0));
    proc.pid = child.pid;
    proc.postMessage = (m) => child.send(m);
    proc.kill = () => child.kill();
    return proc;
  },
};

module.exports = { app, ipcMain, utilityProcess };
