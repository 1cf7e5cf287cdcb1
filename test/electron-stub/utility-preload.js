// What Electron gives a utility process: process.parentPort (messages arrive as { data }) and process.resourcesPath.
"use strict";
const { EventEmitter } = require("node:events");

const parentPort = new EventEmitter();
parentPort.postMessage = (message) => process.send(message);
process.on("message", (message) => parentPort.emit("message", { data: message }));
process.parentPort = parentPort;
process.resourcesPath = process.env.STUB_RESOURCES_PATH;
