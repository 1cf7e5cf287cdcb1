/**
 * Plugs the native multithreaded scatter kernel (native/AddonMath.cpp) into the
 * probes' numeric code; without the addon the JavaScript kernel is used.
 * Imported for its effect by probe.ts.
 */
import { getAddon, physicalCoreCount } from "../native";
import { getScatterKernel, setScatterKernel } from "./linalg";

if (!getScatterKernel()) {
  try {
    const addon = getAddon();
    const threads = physicalCoreCount();
    setScatterKernel((X, rows, cols, center, rowIndex) => addon.scatter(X, rows, cols, center, rowIndex, threads));
  } catch {
    // no native addon: the JavaScript kernel is used
  }
}
