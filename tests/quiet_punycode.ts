/**
 * Imported first by deploy_test.ts. Its Kubernetes models validate with
 * @kubernetes-models/validate 5.0.2 (the latest), which loads
 * ajv-formats-draft2019 1.6.1 (the latest), whose idn-hostname format does
 * `require("punycode")`: that names Node's deprecated built-in module, not
 * the npm package it depends on, so loading it printed a DEP0040 warning
 * on every test run. No manifest uses idn-hostname. This drops that one
 * warning until {@linkcode restoreWarnings} runs, once the models are
 * loaded; every other warning passes.
 *
 * @module
 */
import process from "node:process";

const emitWarning = process.emitWarning;

process.emitWarning = function (
  warning: string | Error,
  ...rest: unknown[]
): void {
  const code = typeof rest[0] === "object" && rest[0] !== null
    ? (rest[0] as { code?: string }).code
    : rest[1];
  if (code === "DEP0040") return;
  return (emitWarning as (...args: unknown[]) => void).call(
    process,
    warning,
    ...rest,
  );
} as typeof process.emitWarning;

/** Puts Node's warnings back as they were. */
export function restoreWarnings(): void {
  process.emitWarning = emitWarning;
}
