/** The one capturing logger of the tests: keeps every line for assertions (METAFORA_TEST_LOG=1 echoes them). */
import type { Logger } from "../../src/types.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";

export class CapturingLogger implements Logger {
  readonly lines: { level: LogLevel; message: string }[] = [];
  constructor(private readonly echo = process.env.METAFORA_TEST_LOG === "1") {}
  private add(level: LogLevel, message: string, args: unknown[]): void {
    const line = args.length ? [message, ...args.map(String)].join(" ") : message;
    this.lines.push({ level, message: line });
    if (this.lines.length > 5000) this.lines.splice(0, 1000);
    if (this.echo) console.log(`[${level}] ${line}`);
  }
  debug(message: string, ...args: unknown[]): void {
    this.add("debug", message, args);
  }
  info(message: string, ...args: unknown[]): void {
    this.add("info", message, args);
  }
  warn(message: string, ...args: unknown[]): void {
    this.add("warn", message, args);
  }
  error(message: string, ...args: unknown[]): void {
    this.add("error", message, args);
  }
  /** Lines at `level` (or any level) containing `text`. */
  find(text: string, level?: LogLevel): string[] {
    return this.lines.filter((l) => (!level || l.level === level) && l.message.includes(text)).map((l) => l.message);
  }
  /** Every line at `level` (or any level), one per line. */
  text(level?: LogLevel): string {
    return this.lines
      .filter((l) => !level || l.level === level)
      .map((l) => l.message)
      .join("\n");
  }
}
