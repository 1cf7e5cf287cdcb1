/**
 * What this process runs on: which addon binary was loaded (prebuilt or built here), which
 * llama.cpp release and libraries, and which backends load. `safety-lens info` prints it.
 */
import * as fs from "node:fs";
import * as path from "node:path";

import { AddonSource, packageAddon } from "./addon-loader";
import { ensureLibraries, findBinsDir, platformPackages, resolveGpu } from "./native";

export interface BackendStatus {
  name: "cpu" | "cuda" | "vulkan" | "metal";
  available: boolean;
  /** device names when available */
  devices: string[];
  /** why not, when unavailable */
  reason?: string;
}

export interface RuntimeInfo {
  addon: AddonSource & { skipped: { path: string; reason: string }[] };
  llamaCpp: { release: string | null; nodeLlamaCpp: string | null; libraries: string | null };
  backends: BackendStatus[];
}

function nodeLlamaCppVersions(): { release: string | null; nodeLlamaCpp: string | null } {
  for (const base of require.resolve.paths("node-llama-cpp") ?? []) {
    const dir = path.join(base, "node-llama-cpp");
    if (!fs.existsSync(path.join(dir, "package.json"))) continue;
    const read = (f: string): Record<string, unknown> | null => {
      try {
        return JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as Record<string, unknown>;
      } catch {
        return null;
      }
    };
    return {
      release: (read("llama/binariesGithubRelease.json")?.release as string | undefined) ?? null,
      nodeLlamaCpp: (read("package.json")?.version as string | undefined) ?? null,
    };
  }
  return { release: null, nodeLlamaCpp: null };
}

/** Loads the addon and llama.cpp's libraries (if not yet loaded) and tries each backend this platform has. */
export function runtimeInfo(): RuntimeInfo {
  const loaded = packageAddon();
  const cpus = ensureLibraries()
    .devices()
    .filter((d) => d.type === "cpu")
    .map((d) => d.description || d.name);
  const pkgs = platformPackages();
  const kinds: ("cuda" | "vulkan" | "metal")[] = process.platform === "darwin" ? ["metal"] : (["cuda", "vulkan"] as const).filter((k) => pkgs[k]);
  const backends: BackendStatus[] = [{ name: "cpu", available: true, devices: cpus }];
  for (const name of kinds) {
    try {
      const r = resolveGpu(name);
      backends.push({ name, available: true, devices: r.devices.map((d) => d.description || d.name) });
    } catch (e) {
      backends.push({ name, available: false, devices: [], reason: (e as Error).message });
    }
  }
  return {
    addon: { ...loaded.source, skipped: loaded.skipped.map((s) => ({ path: s.source.path, reason: s.reason })) },
    llamaCpp: { ...nodeLlamaCppVersions(), libraries: findBinsDir(pkgs.cpu) },
    backends,
  };
}
