/** @type {import('jest').Config} */
// hyparquet, hyparquet-compressors, hysnappy and hyparquet-writer are ES modules only: ts-jest turns
// their files into CommonJS for the tests (Node itself loads them with require(), see src/io/parquet.ts).
const esm = ["hyparquet", "hyparquet-compressors", "hysnappy", "hyparquet-writer"];
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testPathIgnorePatterns: ["/node_modules/", "<rootDir>/test/prebuilds/"], // npm run test:prebuilds
  transform: {
    "^.+\\.ts$": ["ts-jest", { tsconfig: "tsconfig.test.json" }],
    [`/node_modules/(${esm.join("|")})/.+\\.js$`]: ["ts-jest", { tsconfig: { allowJs: true, checkJs: false }, isolatedModules: true }],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${esm.join("|")})/)`],
  testTimeout: 120000,
};
