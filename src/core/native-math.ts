/**
 * Plugs the native multithreaded scatter kernel (native/AddonMath.cpp) into the
 * numeric code in src/math; without the addon the JavaScript kernel is used.
 * Imported for its effect by the probe module.
 */
import { getScatterKernel, setScatterKernel } from "../math/linalg";
import { getAddon, physicalCoreCount } from "./native";

if (!getScatterKernel()) {
  try {
    const addon = getAddon();
    const threads = physicalCoreCount();
    setScatterKernel((X, rows, cols, center, rowIndex) => addon.scatter(X, rows, cols, center, rowIndex, threads));
  } catch {
    // no native addon: the JavaScript kernel is used
  }
}
