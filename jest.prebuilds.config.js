/**
 * The prebuilt-binary checks (`npm run test:prebuilds`, after `npm run prebuild`): the npm package installed
 * without a toolchain, and the linux-arm64 binary run under qemu. CI runs them after `npm test`.
 * @type {import('jest').Config}
 */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test/prebuilds"],
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.test.json" }] },
  testTimeout: 300000,
};
