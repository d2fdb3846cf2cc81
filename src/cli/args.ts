import { parseArgs } from 'node:util';
import { CNI_NAMES, type CniName } from '../cni/dialect.js';
import { CLAIMS_PAGE } from '../cluster/kube-ledger.js';
import { parseRange } from '../net/address.js';
import type { ServeOptions } from '../server/options.js';

export class UsageError extends Error {}

/**
 * How long a claim waits for its pod: the webhook's 10 s timeout, which bounds how long the API server
 * may take between netpin's answer and storing the pod (the webhooks after netpin's), and a margin.
 * A pod that is deleted gives its claims back at once; this wait is for pods that never come.
 */
const DEFAULT_CLAIM_GRACE_SECONDS = 15;
/** How long a workload keeps its egress address with no pod: a rollout, or a scale to 0 and back. */
const DEFAULT_EGRESS_GRACE_SECONDS = 300;
/** How long a cluster that left the ClusterSet keeps its shared claims: time to undo a mistaken leave. */
const DEFAULT_LEAVE_GRACE_SECONDS = 600;

export const SERVE_USAGE = `usage: netpin serve --cni <${CNI_NAMES.join('|')}> [--pools <file.yaml>] [--listen <host:port>]
                    [--cert-dir <dir>] [--ledger <memory|kube>] [--kubeconfig <file>]
                    [--tls-hosts <name,ip,...>] [--claim-grace <seconds>] [--egress-grace <seconds>]
                    [--lease-namespace <ns>] [--log-level <level>] [--egress-excluded-cidrs <cidr,...>]
                    [--claims-page <count>] [--client-ca <bundle.pem>] [--metrics-listen <host:port>]
                    [--clusterset-kubeconfig <file>] [--cluster-id <id>] [--clusterset-leave-grace <seconds>]`;

export const PREVIEW_USAGE = `usage: netpin preview -f <manifest.yaml|-> --cni <${CNI_NAMES.join('|')}>
                      (--pools <file.yaml> | --kubeconfig <file>) [--namespaces <file.yaml>] [-n <namespace>]`;

const STATUS_USAGE = 'usage: netpin status [--kubeconfig <file>] [--pool <name>]';

const DOCTOR_USAGE = `usage: netpin doctor [--kubeconfig <file>] [--cni <${CNI_NAMES.join('|')}>]`;

export const CLUSTERSET_USAGE = `usage: netpin clusterset status --broker-kubeconfig <file>
       netpin clusterset leave --broker-kubeconfig <file> --cluster <id> [--now]`;

/** Every command's usage, as `netpin` without a command prints it. */
export const USAGE = [SERVE_USAGE, PREVIEW_USAGE, STATUS_USAGE, DOCTOR_USAGE, CLUSTERSET_USAGE].join('\n');

const FLAGS = [
  'cni',
  'pools',
  'listen',
  'cert-dir',
  'ledger',
  'kubeconfig',
  'tls-hosts',
  'claim-grace',
  'egress-grace',
  'lease-namespace',
  'log-level',
  'egress-excluded-cidrs',
  'claims-page',
  'client-ca',
  'metrics-listen',
  'clusterset-kubeconfig',
  'cluster-id',
  'clusterset-leave-grace',
] as const;

/**
 * Reads `--flag value` and `--flag=value` pairs, each flag one of `known`; throws UsageError with a one-line reason.
 * node:util parseArgs splits the arguments, in its lenient mode: its strict errors are TypeErrors in Node's
 * own words ("Unknown option '--x'. To specify a positional argument starting with a '-', ..."), which name
 * the flag only inside that text, so the tokens it gives are judged here, in netpin's words.
 */
export function parseFlags<F extends string>(argv: string[], known: readonly F[]): Map<F, string> {
  const options = Object.fromEntries(known.map((f) => [f, { type: 'string' as const }]));
  const { tokens } = parseArgs({ args: argv, options, strict: false, tokens: true });
  const values = new Map<F, string>();
  for (const token of tokens) {
    // A lone "--" ends options for parseArgs; netpin takes none after it, and never did.
    if (token.kind === 'option-terminator') throw new UsageError('unknown flag --');
    // Short flags are positional to netpin: "-abc" is one token per letter, so quote the argument itself.
    if (token.kind === 'positional' || !token.rawName.startsWith('--'))
      throw new UsageError(`unexpected argument "${argv[token.index]}"`);
    if (!(known as readonly string[]).includes(token.name)) throw new UsageError(`unknown flag --${token.name}`);
    // parseArgs takes the next argument as the value even when it is a flag: "--cni --pools p".
    if (token.value === undefined || (token.value.startsWith('--') && !token.inlineValue))
      throw new UsageError(`--${token.name} needs a value`);
    values.set(token.name as F, token.value);
  }
  return values;
}

/** The value of --cni, which every command needs; throws UsageError when it is missing or unknown. */
export function cniFlag(cni: string | undefined): CniName {
  if (!cni) throw new UsageError('--cni is required');
  return asCni(cni, '--cni');
}

/** A CNI name read from `from` (a flag, a Deployment's args); throws UsageError naming it when it is unknown. */
export function asCni(value: string, from: string): CniName {
  if ((CNI_NAMES as readonly string[]).includes(value)) return value as CniName;
  throw new UsageError(`${from} must be one of ${CNI_NAMES.join(', ')}, not "${value}"`);
}

/** Parses `serve` flags; throws UsageError with a one-line reason. */
export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeOptions {
  const values = parseFlags(argv, FLAGS);
  const cni = cniFlag(values.get('cni'));

  // Inside a cluster the ledger belongs in the API server; outside, memory unless told otherwise.
  const ledger = values.get('ledger') ?? (env.KUBERNETES_SERVICE_HOST ? 'kube' : 'memory');
  if (ledger !== 'memory' && ledger !== 'kube')
    throw new UsageError(`--ledger must be memory or kube, not "${ledger}"`);
  if (ledger === 'memory' && !values.get('pools')) throw new UsageError('--ledger memory needs --pools <file.yaml>');

  const { host, port } = hostPort('listen', values.get('listen') ?? '0.0.0.0:8443');
  const metricsFlag = values.get('metrics-listen');
  const metricsListen = metricsFlag === undefined ? undefined : hostPort('metrics-listen', metricsFlag);
  if (metricsListen && metricsListen.port !== 0 && metricsListen.port === port && metricsListen.host === host)
    throw new UsageError('--metrics-listen must differ from --listen');
  const clientCa = values.get('client-ca');
  if (clientCa === '') throw new UsageError('--client-ca needs a file');

  const excluded = (values.get('egress-excluded-cidrs') ?? '')
    .split(',')
    .map((c) => c.trim())
    .filter(Boolean);
  const badCidr = excluded.find((c) => typeof parseRange(c, false) === 'string' || !c.includes('/'));
  if (badCidr !== undefined)
    throw new UsageError(`--egress-excluded-cidrs takes networks such as 10.0.0.0/8, not "${badCidr}"`);

  const seconds = (flag: 'claim-grace' | 'egress-grace' | 'clusterset-leave-grace', byDefault: number) => {
    const n = Number(values.get(flag) ?? byDefault);
    if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${flag} must be a number of seconds`);
    return n;
  };

  const clustersetKubeconfig = values.get('clusterset-kubeconfig');
  if (clustersetKubeconfig !== undefined && ledger !== 'kube')
    throw new UsageError(
      '--clusterset-kubeconfig needs --ledger kube: the ClusterSet shares what the API server keeps',
    );
  const clusterId = values.get('cluster-id');
  if (clusterId !== undefined && clustersetKubeconfig === undefined)
    throw new UsageError('--cluster-id names this cluster in a ClusterSet: it needs --clusterset-kubeconfig');

  const claimsPage = Number(values.get('claims-page') ?? CLAIMS_PAGE);
  if (!Number.isInteger(claimsPage) || claimsPage < 1)
    throw new UsageError('--claims-page must be a whole number of IPClaims, 1 or more');

  return {
    cni,
    pools: values.get('pools'),
    host,
    port,
    certDir: values.get('cert-dir') ?? '.certs',
    ledger,
    kubeconfig: values.get('kubeconfig'),
    hosts: values
      .get('tls-hosts')
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    claimGraceSeconds: seconds('claim-grace', DEFAULT_CLAIM_GRACE_SECONDS),
    egressGraceSeconds: seconds('egress-grace', DEFAULT_EGRESS_GRACE_SECONDS),
    leaseNamespace: values.get('lease-namespace') ?? env.POD_NAMESPACE ?? 'default',
    logLevel: values.get('log-level') ?? env.NETPIN_LOG_LEVEL ?? 'info',
    egressExcludedCidrs: excluded,
    claimsPage,
    ...(clientCa !== undefined ? { clientCa } : {}),
    ...(metricsListen ? { metricsListen } : {}),
    ...(clustersetKubeconfig === undefined
      ? {}
      : {
          clusterSet: {
            kubeconfig: clustersetKubeconfig,
            ...(clusterId === undefined ? {} : { clusterId }),
            leaveGraceSeconds: seconds('clusterset-leave-grace', DEFAULT_LEAVE_GRACE_SECONDS),
          },
        }),
  };
}

/** `host:port`, `[v6]:port` or `:port` (all addresses); throws UsageError naming the flag. */
function hostPort(flag: string, value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`--${flag} must be host:port, not "${value}"`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
