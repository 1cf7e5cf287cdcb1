/** `safety-lens info`: the model, the backend and the devices. */
import { parseArgs } from "node:util";

import { loadModel } from "../core/model";
import { ensureLibraries } from "../core/native";
import { runtimeInfo } from "../core/runtime-info";
import { common, modelOptions, print } from "./util";

export async function cmdInfo(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: common, strict: true });
  const model = await loadModel(modelOptions(values));
  try {
    const devices = ensureLibraries().devices();
    const runtime = runtimeInfo();
    const { chatTemplate, ...rest } = model.info;
    const value = { ...rest, chatTemplate, devicesAvailable: devices, runtime };
    const text = [
      `model        ${model.info.path}`,
      `architecture ${model.info.arch} (${model.info.description})`,
      `name         ${model.info.name}`,
      `layers       ${model.info.nLayer} (capture 0..${model.info.nLayer - 1} and "final")`,
      `width        ${model.info.nEmbd}`,
      `parameters   ${model.info.nParams}`,
      `context      ${model.info.contextSize} (trained ${model.info.nCtxTrain})`,
      `vocabulary   ${model.info.nVocab}`,
      `chat template ${chatTemplate ? "from the model" : "none (a ChatML fallback is used)"}`,
      `fingerprint  ${model.info.fingerprint}`,
      `backend      ${model.info.backend}${model.info.devices.length ? ` (${model.info.devices.join(", ")})` : ""}, ${model.info.threads} threads`,
      `devices      ${devices.map((d) => `${d.name} [${d.type}]`).join(", ")}`,
      `addon        ${runtime.addon.kind === "built" ? "built here" : "prebuilt"}: ${runtime.addon.path}`,
      ...runtime.addon.skipped.map((s) => `             (skipped ${s.path}: ${s.reason})`),
      `llama.cpp    ${runtime.llamaCpp.release ?? "unknown release"} (node-llama-cpp ${runtime.llamaCpp.nodeLlamaCpp ?? "?"}): ${runtime.llamaCpp.libraries}`,
      ...runtime.backends.map((b, i) => `${i === 0 ? "backends     " : "             "}${b.name}: ${b.available ? `yes (${b.devices.join(", ")})` : `no: ${b.reason}`}`),
    ].join("\n");
    print(values.json, value, text);
  } finally {
    await model.dispose();
  }
}
