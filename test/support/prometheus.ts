/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for tests: every line must
 * be a comment (# HELP / # TYPE), blank, or a sample `name{label="v",...} value [timestamp]`.
 * Throws on the first line that is not; returns the samples so tests can look values up.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
const SAMPLE = new RegExp(`^(${NAME})(\\{(?:${LABEL}(?:,${LABEL})*,?)?\\})? (\\S+)( -?\\d+)?$`);
const HELP = new RegExp(`^# HELP ${NAME} .*$`);
const TYPE = new RegExp(`^# TYPE ${NAME} (counter|gauge|histogram|summary|untyped)$`);
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/g;

export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    if (line === "") return;
    if (line.startsWith("#")) {
      if (line.startsWith("# HELP ") ? HELP.test(line) : line.startsWith("# TYPE ") ? TYPE.test(line) : true) return;
      throw new Error(`line ${i + 1} is a malformed comment: ${line}`);
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`line ${i + 1} is not a Prometheus sample: ${line}`);
    const value = parseValue(m[3]!);
    if (value === undefined) throw new Error(`line ${i + 1} has a bad value ${m[3]}: ${line}`);
    const labels: Record<string, string> = {};
    for (const lm of (m[2] ?? "").matchAll(LABEL_PAIR)) labels[lm[1]!] = lm[2]!;
    samples.push({ name: m[1]!, labels, value });
  });
  return samples;
}

/**
 * A sample value as Prometheus reads it (Go's strconv.ParseFloat): decimal or exponent
 * notation, or Inf/Infinity/NaN in any letter case (prom-client writes NaN as "Nan").
 */
function parseValue(raw: string): number | undefined {
  const special = /^([+-]?)(inf|infinity|nan)$/i.exec(raw);
  if (special) return special[2]!.toLowerCase() === "nan" ? NaN : special[1] === "-" ? -Infinity : Infinity;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(raw)) return undefined;
  return Number(raw);
}

/** Value of the sample with this name whose labels include `labels`; undefined if none. */
export function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return found?.value;
}
