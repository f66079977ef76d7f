/**
 * Errors of the embedded store that an operator must act on before the node can start: a
 * damaged or missing database file. They are configuration-class problems (exit 78): the data
 * dir does not hold what it should, and starting anyway would run with less data than was
 * acknowledged. Each message names the file and says what to do.
 */
import { ConfigError } from "../../errors.ts";

export class StoreDamagedError extends ConfigError {
  override name = "StoreDamagedError";
  constructor(
    readonly file: string,
    problem: string,
    advice = salvageAdvice(file),
  ) {
    super(`${file}: ${problem}; ${advice}`);
  }
}

/** What an operator can do with a database that does not pass its checks. */
export function salvageAdvice(file: string): string {
  return (
    `the node refuses to start rather than run with less data. Restore ${file} from a backup, ` +
    `or salvage what is readable with \`metafora store export > tasks.jsonl\`, move the data dir aside and ` +
    `resubmit (\`metafora store check\` reports the problems)`
  );
}
