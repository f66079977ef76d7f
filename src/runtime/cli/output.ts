/**
 * How operator commands print: aligned tables for people, JSON for scripts (`--json`), and
 * errors on stderr. Tables use no colours or box drawing so they survive `| less` and logs.
 */

export interface OutputStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

export interface Output {
  readonly json: boolean;
  /** One JSON document (--json). */
  printJson(value: unknown): void;
  /** A table with a header row; `empty` is printed instead when there are no rows. */
  printTable(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string>>, empty?: string): void;
  /** A line of text for people (suppressed under --json: the JSON says it all). */
  printLine(text: string): void;
  /** A message on stderr. */
  error(text: string): void;
}

export function createOutput(opts: { json: boolean; stdout: OutputStream; stderr: OutputStream }): Output {
  const { stdout, stderr } = opts;
  return {
    json: opts.json,
    printJson: (value) => stdout.write(`${JSON.stringify(value, null, 2)}\n`),
    printTable: (headers, rows, empty) => {
      if (rows.length === 0 && empty !== undefined) stdout.write(`${empty}\n`);
      else stdout.write(renderTable(headers, rows));
    },
    printLine: (text) => {
      if (!opts.json) stdout.write(`${text}\n`);
    },
    error: (text) => stderr.write(text.endsWith("\n") ? text : `${text}\n`),
  };
}

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function renderTable(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string>>): string {
  const cleaned = rows.map((r) => headers.map((_, i) => oneLine(r[i] ?? "")));
  const widths = headers.map((h, i) => Math.max(h.length, ...cleaned.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string =>
    `${cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd()}\n`;
  return line(headers) + cleaned.map(line).join("");
}

/** Control characters (a newline in a task id or prop) would break the table's rows. */
function oneLine(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => (c === "\n" ? "\\n" : c === "\t" ? "\\t" : "?"));
}

/** Shorten long cells (props) to keep rows on one screen line. */
export function truncate(text: string, max = 60): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
