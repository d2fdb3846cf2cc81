// What the report's sections share: number formats, Markdown tables, profile tables, and the
// ratios that both the targets and the tables read.
import type { AdmissionReport, AdmissionRow, ReviewSize, ServerCase } from '../admission.js';
import type { ProfileSummary } from '../profile.js';
import type { ScaleLedger, ScalePhase, ScaleReport } from '../scale.js';

export const CASE_NAMES: Record<ServerCase, string> = { bare: 'bare', rate: 'rate only', alloc: 'allocating' };

/** The review of one size, for names: "small review (2.5 KB)". */
export function sizeLabel(a: AdmissionReport, size: ReviewSize): string {
  return `${size} review (${(a.bodyBytes[size] / 1024).toFixed(1)} KB)`;
}

/** Server CPU per request over the runs at these connection counts, against the bare handler's over the same. */
export function cpuRatio(rows: AdmissionRow[], size: ReviewSize, c: ServerCase, connections: number[]): number {
  const perRequest = (x: ServerCase) => {
    const rs = rows.filter((r) => r.size === size && r.case === x && connections.includes(r.connections));
    return rs.reduce((n, r) => n + r.cpuSeconds, 0) / rs.reduce((n, r) => n + r.requests, 0);
  };
  return perRequest(c) / perRequest('bare');
}

/** The largest VmHWM of a server over every admission run. */
export function peakOf(a: AdmissionReport, c: ServerCase): number | undefined {
  const peaks = a.rows.filter((r) => r.case === c && r.peakRssBytes !== undefined).map((r) => r.peakRssBytes!);
  return peaks.length ? Math.max(...peaks) : undefined;
}

export function peakRatio(a: AdmissionReport, c: ServerCase): number {
  return (peakOf(a, c) ?? NaN) / (peakOf(a, 'bare') ?? NaN);
}

export function scalePhases(sc: ScaleReport | undefined): Partial<Record<ScaleLedger, ScalePhase>> {
  return Object.fromEntries((sc?.phases ?? []).map((x) => [x.ledger, x]));
}

export const f = (x: number | undefined, digits = 2) =>
  x === undefined || !Number.isFinite(x) ? '–' : x.toFixed(digits);
export const mb = (b: number | undefined) => (b === undefined ? '–' : (b / 1024 / 1024).toFixed(0));

export function table(head: string[], rows: Array<Array<string | number>>): string {
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/** Self time by function and by area, and netpin's own functions inclusive; in µs per request where the CPU cost of one is known. */
export function profileTables(
  title: string,
  p: ProfileSummary,
  perRequestUs?: number,
  unit = 'req',
  top = 10,
  own = true,
): string {
  const head = (what: string) => [what, '%', ...(perRequestUs ? [`µs/${unit}`] : [])];
  const rows = (xs: ProfileSummary['topFunctions'], n: number) =>
    xs
      .slice(0, n)
      .map((x) => [
        `\`${x.name.replace(/\|/g, '\\|')}\``,
        f(x.percent, 1),
        ...(perRequestUs ? [f((x.percent * perRequestUs) / 100, 1)] : []),
      ]);
  return [
    `**${title}**: ${f(p.busyMs / 1000, 1)} s busy, ${f(p.idlePercent, 0)} % idle${perRequestUs ? `; ${f(perRequestUs, 0)} µs CPU per ${unit === 'req' ? 'request' : unit} measured apart` : ''}.`,
    '',
    table(head('function (self time)'), rows(p.topFunctions, top)),
    '',
    table(head('area (self time)'), rows(p.byArea, 8)),
    ...(own ? ['', table(head('netpin function (inclusive)'), rows(p.ownInclusive, top))] : []),
  ].join('\n');
}
